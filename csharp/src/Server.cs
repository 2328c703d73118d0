// The server (spec section 5).
//
// Threading model: one thread per connection with blocking socket I/O and a
// small (256 KiB, mostly untouched) stack. Mono 6.8's async socket machinery
// is slow and its single I/O selector thread burns CPU with 10,000 idle
// connections; blocked threads cost nothing but memory. Blocking I/O gives the
// protocol's rules for free: a blocking Send that waits for a non-reading
// client stops that connection's reads (backpressure, D-5) and delays no other
// connection (S-1); ReceiveTimeout is the idle timeout (S-2).
//
// Memory per connection (D-4): a 4 KiB read buffer that grows to 64 KiB the
// first time a read fills it, plus the transducer's output (at most 3x the
// read), both reused for the connection's lifetime. 10,000 idle connections
// stay small; one 256 MiB stream needs ~256 KiB.
//
// Shutdown (S-4): a signal thread (Mono.Unix.UnixSignal on Mono,
// PosixSignalRegistration on .NET) wakes the main thread, which closes the
// listener (new connects are refused), waits up to --drain-timeout for the
// open connections, shuts the rest down, waits briefly for their `close` log
// lines and exits 0.
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
        AddressFamily family;
        volatile bool stopping;

        public Server(ServerOptions options) { this.options = options; }

        /// <summary>Listen, serve until SIGTERM/SIGINT, drain (S-4). Throws CannotListenException (S-9)
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

            var acceptor = new Thread(AcceptLoop) { IsBackground = true, Name = "accept" };
            acceptor.Start();
            stop.WaitOne();
            GC.KeepAlive(signals);
            Drain();
        }

        object InstallSignalHandlers()
        {
#if MONO
            var signals = new[] { new UnixSignal(Signum.SIGTERM), new UnixSignal(Signum.SIGINT) };
            var watcher = new Thread(() =>
            {
                try { UnixSignal.WaitAny(signals, -1); }
                catch (ThreadAbortException) { return; } // runtime shutdown
                catch (Exception e) { Out.Log("signal watcher failed: " + Out.OneLine(e.Message)); }
                stop.Set();
            }, ThreadStack) { IsBackground = true, Name = "signals" };
            watcher.Start();
            return signals;
#else
            Action<PosixSignalContext> handler = context => { context.Cancel = true; stop.Set(); };
            return new[]
            {
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, handler),
                PosixSignalRegistration.Create(PosixSignal.SIGINT, handler),
            };
#endif
        }

        /// <summary>Bind the first address the host resolves to (S-7); any failure is exit 1 (S-9).</summary>
        static Socket Listen(string host, int port)
        {
            IPAddress address;
            if (!IPAddress.TryParse(host, out address))
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

        void AcceptLoop()
        {
            family = listener.AddressFamily;
            while (!stopping)
            {
                Socket client;
                try
                {
                    client = listener.Accept();
                }
                catch (Exception e)
                {
                    if (stopping || e is ObjectDisposedException) return;
                    // EMFILE and friends: say so (not as open/close/reject), back off, go on.
                    Out.Log("accept failed: " + Out.OneLine(e.Message));
                    Thread.Sleep(100);
                    continue;
                }
                try
                {
                    Admit(client);
                }
                catch (Exception e)
                {
                    Out.Log("accept failed: " + Out.OneLine(e.Message));
                    try { client.Close(); } catch (Exception) { }
                }
            }
        }

        void Admit(Socket client)
        {
            string peer = Address.Format((IPEndPoint)client.RemoteEndPoint, family);
            Connection connection;
            lock (gate)
            {
                if (stopping || connections.Count >= options.MaxConnections)
                    connection = null;
                else
                {
                    connection = new Connection(this, client, peer);
                    connections.Add(connection);
                }
            }
            if (connection == null)
            {
                Out.Log("reject peer=" + peer); // S-3
                client.Close();
                return;
            }
            Out.Log("open peer=" + peer); // S-6
            try
            {
                var thread = new Thread(connection.Serve, ThreadStack) { IsBackground = true };
                thread.Start();
            }
            catch (Exception e)
            {
                Out.Log("cannot start a thread for peer=" + peer + ": " + Out.OneLine(e.Message));
                try { client.Close(); } catch (Exception) { }
                Finished(connection);
            }
        }

        internal int IdleMilliseconds { get { return options.IdleTimeoutMs; } }

        internal void Finished(Connection connection)
        {
            bool removed;
            lock (gate)
            {
                removed = connections.Remove(connection);
                Monitor.PulseAll(gate);
            }
            // Freed before it is logged: once a `close` line is out, its slot counts as free (S-3).
            if (removed) Out.Log(connection.CloseLine());
        }

        /// <summary>S-4: refuse new connections, let open ones finish for the drain timeout, close the rest.</summary>
        void Drain()
        {
            stopping = true;
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
                foreach (Connection c in connections) c.Abort();
                // Give the aborted connections a moment to log their `close` lines.
                var grace = Stopwatch.StartNew();
                while (connections.Count > 0 && grace.ElapsedMilliseconds < 2000)
                    Monitor.Wait(gate, 100);
            }
        }
    }

    sealed class Connection
    {
        readonly Server server;
        readonly Socket socket;
        readonly string peer;
        long received, sent;

        public Connection(Server server, Socket socket, string peer)
        {
            this.server = server;
            this.socket = socket;
            this.peer = peer;
        }

        public string CloseLine()
        {
            return "close peer=" + peer + " in=" + Interlocked.Read(ref received) + " out=" + Interlocked.Read(ref sent);
        }

        /// <summary>Ends the connection from another thread: blocked reads and writes return at once.</summary>
        public void Abort()
        {
            try { socket.Shutdown(SocketShutdown.Both); } catch (Exception) { }
        }

        public void Serve()
        {
            try
            {
                socket.NoDelay = true; // answers are small and owed at once (D-2): no Nagle delay
                socket.ReceiveTimeout = server.IdleMilliseconds; // S-2; 0 = off
                var transducer = new Transducer();
                var buffer = new byte[Server.InitialReadBuffer];
                while (true)
                {
                    int r;
                    try
                    {
                        r = socket.Receive(buffer, 0, buffer.Length, SocketFlags.None);
                    }
                    catch (SocketException e)
                    {
                        if (e.SocketErrorCode != SocketError.TimedOut && e.SocketErrorCode != SocketError.WouldBlock) throw;
                        r = 0; // S-2: idle; answer the held-back tail as at EOF (E-2)
                    }
                    if (r == 0)
                    {
                        int tail = transducer.Flush(); // E-1 (Flush before reading Output: it may grow)
                        SendAll(transducer.Output, tail);
                        break;
                    }
                    Interlocked.Add(ref received, r);
                    int n = transducer.Feed(buffer, 0, r); // before reading Output: Feed may grow it
                    SendAll(transducer.Output, n); // blocks while the client does not read (D-5)
                    if (r == buffer.Length && buffer.Length < Server.ReadBuffer) buffer = new byte[Server.ReadBuffer];
                }
            }
            catch (Exception)
            {
                // S-5: a reset or broken pipe (or anything else) ends this connection only.
            }
            finally
            {
                try { socket.Close(); } catch (Exception) { }
                try { server.Finished(this); } catch (Exception) { }
            }
        }

        void SendAll(byte[] data, int count)
        {
            int offset = 0;
            while (offset < count)
            {
                int n = socket.Send(data, offset, count - offset, SocketFlags.None);
                if (n <= 0) throw new SocketException((int)SocketError.ConnectionAborted);
                offset += n;
                Interlocked.Add(ref sent, n);
            }
        }
    }

    static class Address
    {
        /// <summary>Numeric ADDR:PORT, IPv6 in brackets (S-6, S-8).</summary>
        public static string Format(IPEndPoint endpoint)
        {
            return Format(endpoint, endpoint.AddressFamily);
        }

        /// <summary>As the listener's family sees it: Mono may hand an IPv4 listener's peers over as
        /// IPv4-mapped IPv6 addresses; those are written as plain IPv4.</summary>
        public static string Format(IPEndPoint endpoint, AddressFamily listenerFamily)
        {
            IPAddress address = endpoint.Address;
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && listenerFamily == AddressFamily.InterNetwork
                && address.IsIPv4MappedToIPv6)
                address = address.MapToIPv4();
            if (address.AddressFamily == AddressFamily.InterNetworkV6)
                return "[" + address + "]:" + endpoint.Port;
            return address + ":" + endpoint.Port;
        }
    }
}
