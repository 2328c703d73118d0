// The client (spec section 6): MESSAGEs or stdin to the socket, the socket to
// stdout, at the same time (a sender thread and the receiving main thread, so
// a 64 MiB stdin cannot deadlock against a server that answers as it reads).
//
// stdout is the raw standard output Stream, never a TextWriter: the server's
// bytes go out unchanged and are flushed as they arrive (C-4).
//
// --timeout (C-5) bounds the connect (a blocking connect under SO_SNDTIMEO,
// which keeps start-up free of exceptions and the async/thread-pool
// machinery) and, once the sender has half-closed, each wait for data from
// the server.
//
// Resets (C-7): the client exits 0 only when it read the server's FIN and no
// reset was reported before it. Either thread may be the one the kernel
// reports a reset to: when the sender's send consumes ECONNRESET, the
// receiver's next read sees only end of stream. So the sender records a
// failed send under a lock, and the receiver, at end of stream, decides from
// that record, once a send that is under way has returned.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace UpperEcho
{
    /// <summary>The client's options (C-1), as checked by Cli against spec/cli.toml.</summary>
    sealed class ClientOptions
    {
        public readonly string Host; // an address or a name, never empty (X-5)
        public readonly int Port;
        public readonly int TimeoutMs; // at least 1 (C-5)

        public ClientOptions(string host, int port, int timeoutMs)
        {
            Host = host;
            Port = port;
            TimeoutMs = timeoutMs;
        }
    }

    /// <summary>The host is or resolves to an address that names no peer (C-6): exit 3.</summary>
    sealed class NoPeerException : Exception
    {
        public NoPeerException(string message) : base(message) { }
    }

    sealed class Client
    {
        const int Chunk = 64 * 1024;
        // A bound on how long the receiver, having read end of stream, waits for a send under way to
        // return. It returns at once (see EndOfStream), but its thread may not run at once on a busy machine.
        const int InFlightSendGraceMs = 2000;

        readonly Socket socket;
        readonly double timeout;
        readonly Stopwatch clock = Stopwatch.StartNew();
        long halfClosedAtTicks = -1; // clock ticks when the sender half-closed; -1 while sending

        // C-7: which side saw the end first. Guarded by gate.
        readonly object gate = new object();
        bool endRead;                    // the receiver has read end of stream
        bool sending;                    // the sender is inside Socket.Send
        SocketException brokenBySend;    // a send failed before endRead, or with a reset
        volatile string stdinFailure;    // C-8: why stdin could not be read, or null

        Client(Socket socket, double timeout)
        {
            this.socket = socket;
            this.timeout = timeout;
        }

        public static int Run(ClientOptions options, List<byte[]> messages)
        {
            Quirks.SkipSlowSocketInit();
            double timeout = options.TimeoutMs / 1000.0;
            Socket socket;
            try
            {
                socket = Connect(options.Host, options.Port, timeout);
            }
            catch (SocketException e) when (IsReset(e))
            {
                // C-6: the server accepted, then reset before the connect was seen to complete (an S-3 rejection).
                Out.Error("connection broke: " + Out.OneLine(e.Message));
                return ExitCode.ConnectionBroke;
            }
            catch (Exception e)
            {
                string where = options.Host.IndexOf(':') >= 0 ? "[" + options.Host + "]" : options.Host; // IPv6 in brackets
                Out.Error("cannot connect to " + where + ":" + options.Port + ": " + Out.OneLine(Reason(e)));
                return ExitCode.CannotConnect;
            }
            byte[] payload = null;
            if (messages.Count > 0)
            {
                var bytes = new MemoryStream();
                foreach (byte[] m in messages)
                {
                    bytes.Write(m, 0, m.Length); // C-2: each MESSAGE's bytes, then LF
                    bytes.WriteByte((byte)'\n');
                }
                payload = bytes.ToArray();
            }
            var client = new Client(socket, timeout);
            // Background: a sender blocked reading a terminal must not keep the client alive
            // after the server closed (C-7).
            var sender = new Thread(() => client.SendAll(payload), 256 * 1024) { IsBackground = true, Name = "sender" };
            sender.Start();
            // A StdoutException goes up to Cli: exit 1 (X-6). The socket is not closed here: Cli ends the process
            // at once (Quirks.Exit), which closes it, and Mono's Close with the sender inside a socket call
            // interrupts that thread with a signal, one more way for the runtime to trip over itself.
            return client.ReceiveAll();
        }

        /// <summary>A reset (ECONNRESET) or broken pipe (EPIPE, which Mono calls Shutdown): the connection was made.</summary>
        static bool IsReset(SocketException e)
        {
            return e.SocketErrorCode == SocketError.ConnectionReset || e.SocketErrorCode == SocketError.Shutdown;
        }

        static string Reason(Exception e)
        {
            var se = e as SocketException;
            if (se != null && se.SocketErrorCode == SocketError.TimedOut) return "timed out";
            return e.Message;
        }

        /// <summary>Connect to the first address the host resolves to (X-5) within the timeout (C-5).</summary>
        static Socket Connect(string host, int port, double timeoutSeconds)
        {
            IPAddress literal = HostText.Literal(host);
            IPAddress[] addresses = literal != null ? new[] { literal } : Dns.GetHostAddresses(host);
            if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
            IPAddress address = addresses[0]; // X-5: the first address, never the others after it fails
            // C-6: Linux would connect an unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0) to this host; it names no peer.
            IPAddress plain = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
            if (plain.Equals(IPAddress.Any) || plain.Equals(IPAddress.IPv6Any))
                throw new NoPeerException((address == plain ? "" : "::ffff:") + plain + " is an unspecified address, which names no peer");
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                // A blocking connect bounded by SO_SNDTIMEO (Linux honours it for connect): no
                // exception and no async machinery on the successful path, which keeps start-up short.
                socket.SendTimeout = (int)Math.Max(1, Math.Min(timeoutSeconds * 1000, int.MaxValue));
                try
                {
                    socket.Connect(new IPEndPoint(address, port));
                }
                catch (SocketException e)
                {
                    if (e.SocketErrorCode == SocketError.WouldBlock || e.SocketErrorCode == SocketError.InProgress
                        || e.SocketErrorCode == SocketError.TimedOut)
                        throw new SocketException((int)SocketError.TimedOut);
                    throw;
                }
                socket.SendTimeout = 0; // C-5: no timeout while sending
                return socket;
            }
            catch (SocketException)
            {
                socket.Close();
                throw;
            }
        }

        void SendAll(byte[] payload)
        {
            bool inputFailed = false;
            try
            {
                if (payload != null)
                {
                    SendBytes(payload, payload.Length);
                }
                else
                {
                    var buffer = new byte[Chunk];
                    int r, errno;
                    while ((r = Out.ReadStdin(buffer, buffer.Length, out errno)) > 0)
                        if (!SendBytes(buffer, r)) break;
                    if (r < 0)
                    {
                        // C-8: not the end of input. No half-close, and the close is a reset, so the server
                        // cannot take what it got for the whole input; the receiver reports it.
                        inputFailed = true;
                        try { socket.LingerState = new LingerOption(true, 0); } catch (Exception) { }
                        stdinFailure = Posix.Strerror(errno);
                    }
                }
            }
            catch (Exception)
            {
                // C-7: a failed send is recorded by SendBytes for the receiver, which decides the outcome.
            }
            finally
            {
                if (!inputFailed)
                {
                    try { socket.Shutdown(SocketShutdown.Send); } catch (Exception) { }
                    Interlocked.Exchange(ref halfClosedAtTicks, clock.ElapsedTicks);
                }
            }
        }

        /// <summary>Send data[0, count); false when the receiver has read end of stream (C-7: stop sending).
        /// A failed send is recorded, under gate, in the same step that says it is over, so the receiver
        /// never sees "no send under way" without the failure; then its exception is thrown.</summary>
        bool SendBytes(byte[] data, int count)
        {
            int offset = 0;
            while (offset < count)
            {
                lock (gate)
                {
                    if (endRead) return false;
                    sending = true;
                }
                int n = 0;
                SocketException failure = null;
                try
                {
                    n = socket.Send(data, offset, count - offset, SocketFlags.None);
                    if (n <= 0) failure = new SocketException((int)SocketError.ConnectionAborted);
                }
                catch (SocketException e)
                {
                    failure = e;
                }
                finally
                {
                    lock (gate)
                    {
                        sending = false;
                        // Before the receiver read end of stream, any failure breaks the connection (C-7). A reset
                        // (ECONNRESET, not EPIPE) always does: after the server's FIN Linux reports EPIPE, so a
                        // reset means the end of stream the receiver read was the reset's, not a FIN.
                        if (failure != null && brokenBySend == null
                            && (!endRead || failure.SocketErrorCode == SocketError.ConnectionReset))
                            brokenBySend = failure;
                        Monitor.PulseAll(gate);
                    }
                }
                if (failure != null) throw failure;
                offset += n;
            }
            return true;
        }

        /// <summary>The receiver read end of stream: 0 when it was the server's orderly close, else 4 with the
        /// error line. A reset the sender consumed first (its send failed) leaves the receiver only a plain
        /// end of stream, so the sender's record decides. A send under way is ended by shutting our sending
        /// side (C-7: the client stops sending): a blocked send then returns at once, with ECONNRESET when
        /// a reset was pending and EPIPE otherwise, and the receiver waits for that return.</summary>
        int EndOfStream()
        {
            SocketException broken;
            lock (gate)
            {
                endRead = true;
                if (sending)
                {
                    try { socket.Shutdown(SocketShutdown.Send); } catch (Exception) { }
                }
                var wait = Stopwatch.StartNew();
                while (sending && brokenBySend == null)
                {
                    long left = InFlightSendGraceMs - wait.ElapsedMilliseconds;
                    if (left <= 0) break;
                    Monitor.Wait(gate, (int)left);
                }
                broken = brokenBySend;
            }
            if (broken == null) return ExitCode.Ok;
            Out.Error("connection broke: " + Out.OneLine(broken.Message));
            return ExitCode.ConnectionBroke;
        }

        double Seconds(long ticks) { return (double)ticks / Stopwatch.Frequency; }

        /// <summary>Copy the socket to stdout until the server closes; return the exit code (C-6, C-7).</summary>
        int ReceiveAll()
        {
            var buffer = new byte[Chunk];
            long lastDataTicks = 0;
            while (true)
            {
                string inputFailure = stdinFailure;
                if (inputFailure != null)
                {
                    Out.Error("cannot read stdin: " + inputFailure);
                    return ExitCode.Failure;
                }
                long halfClosed = Interlocked.Read(ref halfClosedAtTicks);
                int waitMicros;
                if (halfClosed < 0)
                {
                    waitMicros = 100 * 1000; // still sending: no timeout (C-5); look again for the half-close
                }
                else
                {
                    double since = Seconds(clock.ElapsedTicks - Math.Max(halfClosed, lastDataTicks));
                    double left = timeout - since;
                    if (left <= 0)
                    {
                        Out.Error("no data from the server for " + timeout.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)
                                  + " s after sending everything");
                        return ExitCode.ConnectionBroke;
                    }
                    waitMicros = (int)Math.Max(1, Math.Min(left * 1e6, 1e9));
                }
                bool ready;
                try
                {
                    ready = socket.Poll(waitMicros, SelectMode.SelectRead);
                }
                catch (Exception e)
                {
                    Out.Error("connection broke: " + Out.OneLine(e.Message));
                    return ExitCode.ConnectionBroke;
                }
                if (!ready) continue;
                int r;
                try
                {
                    r = socket.Receive(buffer, 0, buffer.Length, SocketFlags.None);
                }
                catch (Exception e)
                {
                    Out.Error("connection broke: " + Out.OneLine(e.Message));
                    return ExitCode.ConnectionBroke;
                }
                if (r == 0) return EndOfStream();
                lastDataTicks = clock.ElapsedTicks;
                Out.Write(buffer, r); // C-4: the server's bytes, unchanged, flushed; X-6: a failure is exit 1
            }
        }
    }
}
