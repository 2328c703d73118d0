// The server (spec section 5).
//
// Threading model: one thread per connection that waits for its own socket
// (below) and a small (256 KiB, mostly untouched) stack. Mono 6.8's async
// socket machinery is slow and its single I/O selector thread burns CPU with
// 10,000 idle connections; waiting threads cost nothing but memory. A thread
// per connection gives the protocol's rules for free: a send that waits for a
// non-reading client stops that connection's reads (backpressure, D-5) and
// delays no other connection (S-1).
//
// Connections live on raw descriptors (Quirks.cs, class Posix), not Mono's Socket: accept(2)
// reports the peer even of a connection reset in the backlog (S-6), and its
// errno tells exhaustion (S-10) from a dead connection. A connection thread
// waits only in poll(2) on its socket, and then reads and writes without
// blocking: the idle timeout (S-2) is the poll's timeout (a receive that
// waited S seconds ends the connection orderly, as nothing is waiting to be
// sent; a send of which the peer took nothing for S seconds resets it), and
// the drain (S-4) can reset the socket from its own thread without waking
// it. Every reset is SO_LINGER 0 and close(2), never shutdown(2), which
// would send a FIN first (S-2, S-3, S-4).
//
// The accept thread only accepts, logs and admits (S-3); a second thread
// starts the connection threads, which costs Mono far more than an accept, so
// a burst of connects never overflows the backlog of 1024 (S-12).
//
// Memory per connection (D-4): a 4 KiB read buffer that grows to 64 KiB the
// first time a read fills it, plus the transducer's output (at most 3x the
// read), both reused for the connection's lifetime. 10,000 idle connections
// stay small; one 256 MiB stream needs ~256 KiB.
//
// Shutdown (S-4): a signal thread (Mono.Unix.UnixSignal on Mono,
// PosixSignalRegistration on .NET) wakes the main thread, which shuts the
// listener down (new connects are refused), waits up to --drain-timeout for the
// open connections, resets the rest itself, logs their `close` lines and exits 0.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading;
#if MONO
using Mono.Unix;
using Mono.Unix.Native;
#else
using System.Runtime.InteropServices;
#endif

namespace UpperEcho
{
    /// <summary>The server's options (S-7), as checked by Cli against spec/cli.toml.</summary>
    sealed class ServerOptions
    {
        public readonly string Host; // an address or a name, never empty
        public readonly int Port;
        public readonly int IdleTimeoutMs; // 0 = off (S-2)
        public readonly int MaxConnections;
        public readonly int DrainTimeoutMs;

        public ServerOptions(string host, int port, int idleTimeoutMs, int maxConnections, int drainTimeoutMs)
        {
            Host = host;
            Port = port;
            IdleTimeoutMs = idleTimeoutMs;
            MaxConnections = maxConnections;
            DrainTimeoutMs = drainTimeoutMs;
        }
    }

    /// <summary>The server cannot listen (S-9): Cli maps it to exit 1.</summary>
    sealed class CannotListenException : Exception
    {
        public CannotListenException(string message) : base(message) { }
    }

    sealed class Server
    {
        public const int ReadBuffer = 64 * 1024; // D-4
        public const int InitialReadBuffer = 4 * 1024; // grows to ReadBuffer when a read fills it
        const int ThreadStack = 256 * 1024;

        readonly ServerOptions options;
        readonly object gate = new object();
        readonly HashSet<Connection> connections = new HashSet<Connection>();
        readonly ManualResetEvent stop = new ManualResetEvent(false);
        Socket listener;
        volatile bool stopping;

        public Server(ServerOptions options) { this.options = options; }

        /// <summary>Listen, serve until SIGTERM, SIGINT or SIGHUP, drain (S-4). Throws CannotListenException (S-9)
        /// and StdoutException when the readiness line cannot be written (S-9, X-6).</summary>
        public void Run()
        {
            Quirks.SkipSlowSocketInit();
            listener = Listen(options.Host, options.Port);
            var signals = InstallSignalHandlers(); // before readiness: a SIGTERM right after it must drain
            try
            {
                Out.Print("listening on " + Address.Format((IPEndPoint)listener.LocalEndPoint) + "\n"); // S-8
            }
            catch (StdoutException)
            {
                listener.Close(); // nobody learns the address: accept nothing
                throw;
            }

            listenerFd = (int)listener.Handle;
            acceptor = new Thread(AcceptLoop, ThreadStack) { IsBackground = true, Name = "accept" };
            acceptor.Start();
            new Thread(StartLoop, ThreadStack) { IsBackground = true, Name = "starter" }.Start();
#if MONO
            // The watcher sets stop at once. A signal that came before its WaitAny made its pipes, or that it could not
            // wait for, is counted all the same: the counts are looked at here, which makes no pipe.
            var watched = (UnixSignal[])signals;
            while (!stop.WaitOne(SignalPollMs) && !Array.Exists(watched, signal => signal.IsSet)) { }
#else
            stop.WaitOne();
#endif
            GC.KeepAlive(signals);
            Drain();
        }

#if MONO
        const int SignalPollMs = 200;
#endif

        /// <summary>SIGTERM, SIGINT and SIGHUP stop the server (S-4); a SIGHUP ignored when the server started (as nohup
        /// leaves it) stays ignored.</summary>
        object InstallSignalHandlers()
        {
            bool hangUp = !Posix.IsIgnored(Posix.SIGHUP);
#if MONO
            var list = new List<UnixSignal> { new UnixSignal(Signum.SIGTERM), new UnixSignal(Signum.SIGINT) };
            if (hangUp) list.Add(new UnixSignal(Signum.SIGHUP));
            UnixSignal[] signals = list.ToArray();
            var watcher = new Thread(() =>
            {
                // UnixSignal's handler counts a signal, and wakes a WaitAny only through a pipe per signal that WaitAny
                // makes when it starts waiting and removes when it returns: a signal that comes before (this thread
                // may start after the readiness line) is counted but wakes nobody, so Run looks at the counts too.
                // One WaitAny only: after a pipe(2) that failed (no descriptor left, S-10) Mono leaves a signal's count
                // of pipes at -1, and every later WaitAny polls stdin instead, which returns at once: a spin.
                try { UnixSignal.WaitAny(signals, -1); }
                catch (ThreadAbortException) { return; } // runtime shutdown
                catch (Exception e) { Out.Log("signal watcher failed: " + Out.OneLine(e.Message)); }
                if (Array.Exists(signals, signal => signal.IsSet)) stop.Set(); // else it could not wait: Run still looks
            }, ThreadStack) { IsBackground = true, Name = "signals" };
            watcher.Start();
            return signals;
#else
            Action<PosixSignalContext> handler = context => { context.Cancel = true; stop.Set(); };
            var registrations = new List<PosixSignalRegistration>
            {
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, handler),
                PosixSignalRegistration.Create(PosixSignal.SIGINT, handler),
            };
            if (hangUp) registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, handler));
            return registrations;
#endif
        }

        /// <summary>Bind the first address the host resolves to (S-7); any failure is exit 1 (S-9).</summary>
        static Socket Listen(string host, int port)
        {
            IPAddress address = HostText.Literal(host);
            if (address == null)
            {
                IPAddress[] addresses;
                try { addresses = Dns.GetHostAddresses(host); }
                catch (Exception e) { throw new CannotListenException("cannot listen on " + host + ":" + port + ": " + Out.OneLine(e.Message)); }
                if (addresses.Length == 0) throw new CannotListenException("cannot listen on " + host + ":" + port + ": no address");
                address = addresses[0];
            }
            var endpoint = new IPEndPoint(address, port);
            Socket socket = null;
            try
            {
                socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                Quirks.SetReuseAddress(socket);
                socket.Bind(endpoint);
                socket.Listen(1024);
                return socket;
            }
            catch (Exception e)
            {
                if (socket != null) socket.Close();
                throw new CannotListenException("cannot listen on " + Address.Format(endpoint) + ": " + Out.OneLine(e.Message));
            }
        }

        // S-10: a resource error pauses accepting this long; its diagnostic is logged at most once a second.
        const int ResourcePauseMs = 100;
        const int DiagnosticIntervalMs = 1000;
        readonly Stopwatch clock = Stopwatch.StartNew();
        long lastDiagnosticMs = -DiagnosticIntervalMs;
        int suppressedDiagnostics;
        int listenerFd;
        Thread acceptor;
        readonly Queue<Connection> starting = new Queue<Connection>(); // admitted, their threads not started yet

        void AcceptLoop()
        {
            while (!stopping)
            {
                // Accept blocks here; the poll bounds how long a stop can go unnoticed. A failed poll returns at
                // once, and the accept that follows reports the failure.
                Posix.Wait(listenerFd, Posix.POLLIN, 200);
                if (stopping) break;
                IPEndPoint peer;
                int errno;
                int fd = Posix.Accept(listenerFd, out peer, out errno);
                if (fd < 0)
                {
                    if (Posix.IsResourceError(errno))
                    {
                        // S-10: out of descriptors or memory. Open connections go on; say so (rarely), pause.
                        AcceptDiagnostic(Posix.Describe(errno));
                        Thread.Sleep(ResourcePauseMs);
                    }
                    // Anything else is a connection that died before accept returned it (ECONNABORTED,
                    // the network errors Linux passes on), EINTR, or EAGAIN: not logged (S-6), try again.
                    continue;
                }
                try
                {
                    Admit(fd, peer);
                }
                catch (Exception e)
                {
                    AcceptDiagnostic(Out.OneLine(e.Message));
                }
            }
        }

        /// <summary>A diagnostic of the accept path, at most one a second (S-10); the count of the ones left
        /// out goes on the next one.</summary>
        void AcceptDiagnostic(string message)
        {
            lock (clock)
            {
                long now = clock.ElapsedMilliseconds;
                if (now - lastDiagnosticMs < DiagnosticIntervalMs)
                {
                    suppressedDiagnostics++;
                    return;
                }
                string line = "accept failed: " + message;
                if (suppressedDiagnostics > 0)
                    line += " (and " + suppressedDiagnostics + " more accept failures since the last such line, not logged)";
                Out.Log(line); // never starts like an open/close/reject line (S-6)
                lastDiagnosticMs = now;
                suppressedDiagnostics = 0;
            }
        }

        void Admit(int fd, IPEndPoint endpoint)
        {
            string peer = Address.Format(endpoint); // the address accept reported (S-6)
            Connection connection;
            lock (gate)
            {
                if (stopping || connections.Count >= options.MaxConnections)
                    connection = null;
                else
                {
                    connection = new Connection(this, fd, peer);
                    connections.Add(connection);
                    Out.Log("open peer=" + peer); // S-6; under the lock: the drain never logs its close line first
                }
            }
            if (connection == null)
            {
                // S-3: a reset, never an orderly close, whether or not it sent anything.
                Posix.LingerZero(fd);
                Posix.Close(fd);
                Out.Log("reject peer=" + peer);
                return;
            }
            lock (starting)
            {
                starting.Enqueue(connection);
                Monitor.Pulse(starting);
            }
        }

        /// <summary>Starts the threads of admitted connections. Starting a thread costs Mono far more than
        /// an accept; done here, off the accept thread, a burst of connects never fills the backlog
        /// (S-12: a full backlog drops SYNs, and the client waits a 1 s retransmit).</summary>
        void StartLoop()
        {
            while (true)
            {
                Connection connection;
                lock (starting)
                {
                    while (starting.Count == 0) Monitor.Wait(starting);
                    connection = starting.Dequeue();
                }
                try
                {
                    var thread = new Thread(connection.Serve, ThreadStack) { IsBackground = true };
                    thread.Start();
                }
                catch (Exception e)
                {
                    AcceptDiagnostic("cannot start a thread for a connection: " + Out.OneLine(e.Message));
                    connection.End(true);
                    Finished(connection);
                    Thread.Sleep(ResourcePauseMs); // out of memory or threads: let some end first
                }
            }
        }

        internal int IdleMilliseconds { get { return options.IdleTimeoutMs; } }

        internal void Finished(Connection connection)
        {
            lock (gate)
            {
                // Freed before it is logged: once a `close` line is out, its slot counts as free (S-3).
                // Logged under the lock: a drain that sees no connection left has all their close lines (S-4).
                // Not there: the drain took it and logs it (one close line each, S-6).
                if (connections.Remove(connection))
                {
                    var line = new byte[Connection.MaxCloseLine];
                    Out.LogLines(line, connection.CloseLine(line, 0));
                }
                if (connections.Count == 0) Monitor.Pulse(gate); // only the drain waits, and only for this
            }
        }

        /// <summary>S-4: refuse new connections, let open ones finish for the drain timeout, reset the rest.</summary>
        void Drain()
        {
            stopping = true;
            // shutdown(2) of a listening socket refuses new connections at once and wakes accept; the
            // descriptor is closed only once the accept thread is out, so it never accepts on a reused one.
            Posix.Shutdown(listenerFd);
            acceptor.Join(1000);
            if (!acceptor.IsAlive)
                try { listener.Close(); } catch (Exception) { }
            var clock = Stopwatch.StartNew();
            double drainMs = options.DrainTimeoutMs;
            var lines = new byte[4096]; // the close lines of the rest, a batch at a time
            lock (gate)
            {
                while (connections.Count > 0)
                {
                    double left = drainMs - clock.Elapsed.TotalMilliseconds;
                    if (left <= 0) break;
                    Monitor.Wait(gate, TimeSpan.FromMilliseconds(Math.Min(left, 1000)));
                }
                lock (starting) starting.Clear(); // admitted but never started: reset below like the rest
                // This thread resets the rest itself: woken to do it, 10,000 connection threads took seconds on two
                // CPUs. One at work finds its connection closed at its next call. A socket whose thread waits in
                // poll(2) is freed, with the reset of SO_LINGER 0, when that poll ends: at the exit, right after this.
                // Nothing is allocated in this loop: a GC stops every thread, and with 10,000 of them takes ~0.3 s.
                int used = 0;
                foreach (Connection connection in connections)
                {
                    connection.End(true);
                    if (used > lines.Length - Connection.MaxCloseLine)
                    {
                        Out.LogLines(lines, used);
                        used = 0;
                    }
                    used = connection.CloseLine(lines, used);
                }
                Out.LogLines(lines, used);
                connections.Clear(); // logged here: the connection threads log nothing more (one close line each, S-6)
            }
        }
    }

    sealed class Connection
    {
        // How a connection ends: orderly (FIN after everything owed, E-1/E-2) or a reset (SO_LINGER 0).
        enum Sent { All, Stalled, Broken }

        readonly Server server;
        readonly int fd;
        readonly string peer;
        // The drain closes the descriptor from its own thread (S-4). So every call on it but poll(2) is made under
        // guard, and never once it is closed (its number may be reused); and the counts are final once it is.
        // A poll on it meanwhile returns at once (POLLNVAL), or waits on a reused number until the process exits.
        readonly object guard = new object();
        bool closed;
        long received, sent;

        public Connection(Server server, int fd, string peer)
        {
            this.server = server;
            this.fd = fd;
            this.peer = peer;
            Posix.SetInt(fd, Posix.IPPROTO_TCP, Posix.TCP_NODELAY, 1); // answers are owed at once (D-2): no Nagle delay
        }

        // `close peer=[IPv6%scope]:PORT in=N out=M` and its newline, at their longest, in bytes.
        public const int MaxCloseLine = 160;

        /// <summary>Writes the close line (S-6) and its newline into buffer at offset: the offset after it. Allocates
        /// nothing, for the drain (S-4).</summary>
        public int CloseLine(byte[] buffer, int offset)
        {
            lock (guard)
            {
                offset = Ascii(buffer, offset, "close peer=");
                offset = Ascii(buffer, offset, peer);
                offset = Ascii(buffer, offset, " in=");
                offset = Decimal(buffer, offset, received);
                offset = Ascii(buffer, offset, " out=");
                offset = Decimal(buffer, offset, sent);
                buffer[offset] = (byte)'\n';
                return offset + 1;
            }
        }

        static int Ascii(byte[] buffer, int offset, string text)
        {
            foreach (char c in text) buffer[offset++] = (byte)c; // an address is ASCII
            return offset;
        }

        static int Decimal(byte[] buffer, int offset, long value)
        {
            int digits = 1;
            for (long rest = value; rest >= 10; rest /= 10) digits++;
            for (int k = offset + digits - 1; k >= offset; k--, value /= 10) buffer[k] = (byte)('0' + value % 10);
            return offset + digits;
        }

        /// <summary>Closes the descriptor, with a reset (SO_LINGER 0) or orderly, unless it is closed already.</summary>
        public void End(bool reset)
        {
            lock (guard)
            {
                if (closed) return;
                closed = true;
                if (reset) Posix.LingerZero(fd);
                Posix.Close(fd);
            }
        }

        public void Serve()
        {
            bool reset = true;
            try
            {
                reset = !Converse();
            }
            catch (Exception)
            {
                // S-5: anything unexpected ends this connection only.
            }
            finally
            {
                try { End(reset); } catch (Exception) { }
                try { server.Finished(this); } catch (Exception) { }
            }
        }

        /// <summary>The session; true when it ends orderly (everything owed was taken), false for a reset.</summary>
        bool Converse()
        {
            var transducer = new Transducer();
            var buffer = new byte[Server.InitialReadBuffer];
            while (true)
            {
                int r = Receive(buffer);
                if (r < 0) return false; // reset by the peer (S-5), or the drain ran out (S-4)
                if (r == 0)
                {
                    int tail = transducer.Flush(); // E-1 (Flush before reading Output: it may grow)
                    return SendAll(transducer.Output, tail) == Sent.All;
                }
                int n = transducer.Feed(buffer, 0, r); // before reading Output: Feed may grow it
                if (SendAll(transducer.Output, n) != Sent.All) return false; // waits while the client does not read (D-5)
                if (r == buffer.Length && buffer.Length < Server.ReadBuffer) buffer = new byte[Server.ReadBuffer];
            }
        }

        /// <summary>The bytes the peer sent next, waiting for them: their count; 0 at end of stream, and also when
        /// nothing came for the idle timeout (S-2: nothing is waiting to be sent, so the held-back tail is answered
        /// as at EOF, E-2); -1 for a reset by the peer (S-5) or by the drain (S-4).</summary>
        int Receive(byte[] buffer)
        {
            long since = Stopwatch.GetTimestamp();
            while (true)
            {
                int r, errno;
                lock (guard)
                {
                    if (closed) return -1; // by the drain
                    r = Posix.Receive(fd, buffer, 0, buffer.Length, out errno);
                    if (r > 0) received += r;
                }
                if (r >= 0) return r;
                if (errno != Posix.EAGAIN && errno != Posix.EINTR) return -1;
                int wait = WaitLeft(since);
                if (wait == 0) return 0;
                if (Posix.Wait(fd, Posix.POLLIN, wait) != 0) return -1;
            }
        }

        Sent SendAll(byte[] data, int count)
        {
            int offset = 0;
            long since = Stopwatch.GetTimestamp(); // the last progress: the peer took some of the answer
            while (offset < count)
            {
                int n, errno;
                lock (guard)
                {
                    if (closed) return Sent.Broken; // by the drain
                    n = Posix.Send(fd, data, offset, count - offset, out errno);
                    if (n > 0) sent += n;
                }
                if (n >= 0)
                {
                    offset += n; // a partial send is progress: the next wait is S seconds afresh
                    since = Stopwatch.GetTimestamp();
                    continue;
                }
                if (errno != Posix.EAGAIN && errno != Posix.EINTR) return Sent.Broken;
                int wait = WaitLeft(since);
                if (wait == 0) return Sent.Stalled; // S-2: the peer took none of the answer for S seconds
                if (Posix.Wait(fd, Posix.POLLOUT, wait) != 0) return Sent.Broken;
            }
            return Sent.All;
        }

        /// <summary>How long a wait without progress since `since` may still go on (S-2): -1 for ever when the idle
        /// timeout is off, 0 when it has run out. A wait that a signal cut short (Mono's GC suspends threads with
        /// signals) goes on for what is left.</summary>
        int WaitLeft(long since)
        {
            int idle = server.IdleMilliseconds;
            if (idle <= 0) return -1;
            long waitedMs = (Stopwatch.GetTimestamp() - since) * 1000 / Stopwatch.Frequency;
            return (int)Math.Max(0, idle - waitedMs);
        }
    }

    static class Address
    {
        /// <summary>Numeric ADDR:PORT, IPv6 in brackets, an IPv4-mapped IPv6 address as plain IPv4 (S-6, S-8).</summary>
        public static string Format(IPEndPoint endpoint)
        {
            IPAddress address = endpoint.Address;
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.IsIPv4MappedToIPv6)
                address = address.MapToIPv4();
            if (address.AddressFamily == AddressFamily.InterNetworkV6)
                return "[" + address + "]:" + endpoint.Port;
            return address + ":" + endpoint.Port;
        }
    }
}
