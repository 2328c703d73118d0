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
// waits only in poll(2), on its socket and on the server's abort eventfd, and
// then reads and writes without blocking: the idle timeout (S-2) is the
// poll's timeout (a receive that waited S seconds ends the connection
// orderly, as nothing is waiting to be sent; a send of which the peer took
// nothing for S seconds resets it), and the end of the drain (S-4) wakes every
// wait at once. Every reset is SO_LINGER 0 and close(2), never shutdown(2),
// which would send a FIN first (S-2, S-3, S-4).
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
// open connections, resets the rest (the abort eventfd), waits briefly for their
// `close` log lines and exits 0.
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
        int abortFd; // an eventfd, readable once the drain ran out (S-4): it wakes every connection's wait
        volatile bool aborted;

        public Server(ServerOptions options) { this.options = options; }

        /// <summary>Listen, serve until SIGTERM, SIGINT or SIGHUP, drain (S-4). Throws CannotListenException (S-9)
        /// and StdoutException when the readiness line cannot be written (S-9, X-6).</summary>
        public void Run()
        {
            Quirks.SkipSlowSocketInit();
            int errno;
            abortFd = Posix.EventFd(out errno);
            if (abortFd < 0) throw new CannotListenException("cannot make an eventfd: " + Posix.Strerror(errno));
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
            stop.WaitOne();
            GC.KeepAlive(signals);
            Drain();
        }

#if MONO
        const int SignalPollMs = 200;
#endif

        /// <summary>SIGTERM, SIGINT and SIGHUP set stop (S-4); a SIGHUP ignored when the server started (as nohup leaves
        /// it) stays ignored.</summary>
        object InstallSignalHandlers()
        {
            bool hangUp = !Posix.IsIgnored(Posix.SIGHUP);
#if MONO
            var list = new List<UnixSignal> { new UnixSignal(Signum.SIGTERM), new UnixSignal(Signum.SIGINT) };
            if (hangUp) list.Add(new UnixSignal(Signum.SIGHUP));
            UnixSignal[] signals = list.ToArray();
            var watcher = new Thread(() =>
            {
                // UnixSignal's handler counts a signal, and wakes a WaitAny only through a pipe that WaitAny makes
                // when it starts waiting and removes when it returns: a signal that comes before (this thread may
                // start after the readiness line) is counted but wakes nobody. So each wait is short, and the
                // counts are looked at between waits.
                try
                {
                    while (!Array.Exists(signals, signal => signal.IsSet)) UnixSignal.WaitAny(signals, SignalPollMs);
                }
                catch (ThreadAbortException) { return; } // runtime shutdown
                catch (Exception e) { Out.Log("signal watcher failed: " + Out.OneLine(e.Message)); }
                stop.Set();
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
                // Accept blocks here; the poll bounds how long a stop can go unnoticed.
                Posix.WaitReadable(listenerFd, 200);
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
            Out.Log("open peer=" + peer); // S-6
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

        /// <summary>The drain ran out (S-4): every connection still open is reset.</summary>
        internal bool Aborted { get { return aborted; } }

        internal int AbortFd { get { return abortFd; } }

        internal void Finished(Connection connection)
        {
            lock (gate)
            {
                // Freed before it is logged: once a `close` line is out, its slot counts as free (S-3).
                // Logged under the lock: a drain that sees no connection left has all their close lines (S-4).
                if (connections.Remove(connection)) Out.Log(connection.CloseLine());
                Monitor.PulseAll(gate);
            }
        }

        /// <summary>S-4: refuse new connections, let open ones finish for the drain timeout, close the rest.</summary>
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
            lock (gate)
            {
                while (connections.Count > 0)
                {
                    double left = drainMs - clock.Elapsed.TotalMilliseconds;
                    if (left <= 0) break;
                    Monitor.Wait(gate, TimeSpan.FromMilliseconds(Math.Min(left, 1000)));
                }
                // The rest are reset: their threads wake from any wait, see Aborted, and close with SO_LINGER 0.
                aborted = true;
                Posix.Wake(abortFd);
                // Give the aborted connections a moment to log their `close` lines.
                var grace = Stopwatch.StartNew();
                while (connections.Count > 0 && grace.ElapsedMilliseconds < 2000)
                    Monitor.Wait(gate, 100);
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
        long received, sent;

        public Connection(Server server, int fd, string peer)
        {
            this.server = server;
            this.fd = fd;
            this.peer = peer;
        }

        public string CloseLine()
        {
            return "close peer=" + peer + " in=" + Interlocked.Read(ref received) + " out=" + Interlocked.Read(ref sent);
        }

        /// <summary>Closes the descriptor, with a reset (SO_LINGER 0) or orderly.</summary>
        public void End(bool reset)
        {
            if (reset) Posix.LingerZero(fd);
            Posix.Close(fd);
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
            Posix.SetInt(fd, Posix.IPPROTO_TCP, Posix.TCP_NODELAY, 1); // answers are owed at once (D-2): no Nagle delay
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
                Interlocked.Add(ref received, r);
                int n = transducer.Feed(buffer, 0, r); // before reading Output: Feed may grow it
                if (SendAll(transducer.Output, n) != Sent.All) return false; // waits while the client does not read (D-5)
                if (r == buffer.Length && buffer.Length < Server.ReadBuffer) buffer = new byte[Server.ReadBuffer];
            }
        }

        /// <summary>The bytes the peer sent next, waiting for them: their count; 0 at end of stream, and also when
        /// nothing came for the idle timeout (S-2: nothing is waiting to be sent, so the held-back tail is answered
        /// as at EOF, E-2); -1 for a reset by the peer (S-5) or the end of the drain (S-4).</summary>
        int Receive(byte[] buffer)
        {
            long since = Stopwatch.GetTimestamp();
            while (true)
            {
                if (server.Aborted) return -1;
                int errno;
                int r = Posix.Receive(fd, buffer, 0, buffer.Length, out errno);
                if (r >= 0) return r;
                if (errno != Posix.EAGAIN && errno != Posix.EINTR) return -1;
                int wait = WaitLeft(since);
                if (wait == 0) return 0;
                if (Posix.WaitEither(fd, Posix.POLLIN, server.AbortFd, wait) != 0) return -1;
            }
        }

        Sent SendAll(byte[] data, int count)
        {
            int offset = 0;
            long since = Stopwatch.GetTimestamp(); // the last progress: the peer took some of the answer
            while (offset < count)
            {
                if (server.Aborted) return Sent.Broken;
                int errno;
                int n = Posix.Send(fd, data, offset, count - offset, out errno);
                if (n >= 0)
                {
                    offset += n; // a partial send is progress: the next wait is S seconds afresh
                    Interlocked.Add(ref sent, n);
                    since = Stopwatch.GetTimestamp();
                    continue;
                }
                if (errno != Posix.EAGAIN && errno != Posix.EINTR) return Sent.Broken;
                int wait = WaitLeft(since);
                if (wait == 0) return Sent.Stalled; // S-2: the peer took none of the answer for S seconds
                if (Posix.WaitEither(fd, Posix.POLLOUT, server.AbortFd, wait) != 0) return Sent.Broken;
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
