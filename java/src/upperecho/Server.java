// The server (spec/PROTOCOL.md section 5): one thread per connection, a watchdog for S-2, S-4 drain from a shutdown hook.
package upperecho;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The server (spec/PROTOCOL.md section 5): blocking I/O, one thread per
 * connection.
 *
 * Threads: each connection gets a daemon platform thread with a small stack
 * (CONNECTION_STACK), so 10,000 mostly idle connections cost little more than
 * their touched stack pages. A thread blocked on read() is all an idle
 * connection costs, and one blocked on write() is backpressure (D-5): it does
 * not read while the client does not read. Nothing one connection does can
 * delay another (S-1).
 *
 * Memory (D-4): the read buffer starts small (idle connections are cheap)
 * and grows to 64 KiB on reads that fill it; the transducer's output buffer
 * is reused, so a long stream allocates nothing after the first reads.
 *
 * Idle timeout (S-2): no SO_TIMEOUT. A socket with a timeout is switched to
 * non-blocking mode by the JDK, and then every read that has to wait costs
 * read (EAGAIN) + poll + read instead of one blocking read: twice the
 * syscalls per ping-pong request (profiled). Instead one watchdog thread
 * looks at every connection's last progress (a read that returned bytes, a
 * write that completed) a few times a second. A connection idle in read is
 * shut down for input, so its blocked read returns EOF and the thread
 * answers the held-back tail and closes in order (E-2); one stuck in write
 * (the peer stopped taking the answer) is reset. Progress inside one
 * blocking write is not visible, so a peer taking fewer bytes than one write
 * (at most 64 KiB of input's answer) per idle timeout counts as stalled.
 *
 * File descriptors (S-10): the JDK initialises sun.nio.ch.FileDispatcherImpl
 * on the first socket close, and that initialisation needs a descriptor of
 * its own; if it first happens under EMFILE the class is broken for good and
 * no socket can ever be closed again. So the server closes a loopback
 * socket pair before it listens (warmUp). Accept failures back off 100 ms,
 * with at most one diagnostic line a second.
 *
 * Shutdown (S-4): the JVM turns SIGTERM/SIGINT into its shutdown sequence,
 * which runs our shutdown hook (a supported API; sun.misc.Signal is not).
 * The hook closes the listener (new connects are refused), waits until the
 * accept loop has drained the open connections, and ends the process with
 * Runtime.halt(0): a hook that returned would let the JVM exit 143 or 130,
 * and S-4 says 0.
 */
final class Server {
    /** `upper-echo server` (S-7), the timeouts in milliseconds (0 = off for the idle timeout). */
    record Options(String host, int port, int idleTimeoutMs, int maxConnections, int drainTimeoutMs) {
    }

    static final int MAX_READ_BUFFER = 64 * 1024; // D-4
    private static final int INITIAL_READ_BUFFER = 4 * 1024;
    private static final long CONNECTION_STACK = 256 * 1024;
    private static final int BACKLOG = 1024; // S-12
    /** After the drain timeout, how long to wait for reset connections to log their close line (S-4: within 1 s). */
    private static final long ABORT_GRACE_MS = 500;
    /** S-10: pause accepting this long after a failed accept. */
    private static final long ACCEPT_BACKOFF_MS = 100;
    /** S-10: at most one accept diagnostic per this many nanoseconds. */
    private static final long DIAGNOSTIC_INTERVAL_NS = 1_000_000_000L;

    private final Options options;
    private final Table table = Table.get();

    private final Set<Connection> open = ConcurrentHashMap.newKeySet();
    private final Object lock = new Object();
    /** Connections counted against --max-connections; freed just before the socket closes. Guarded by lock. */
    private int openCount;
    /** Connection threads that have not yet logged their close line (what the drain waits for). Guarded by lock. */
    private int liveCount;
    private volatile boolean stopping;
    private volatile ServerSocket listener;
    /** Counted down once the accept loop has drained (S-4): then the shutdown hook may end the process. */
    private final CountDownLatch drained = new CountDownLatch(1);
    /** S-10: when the last diagnostic was written, and how many were left out since. Guarded by this. */
    private long lastDiagnostic = System.nanoTime() - DIAGNOSTIC_INTERVAL_NS;
    private long leftOut;

    /** Cannot listen: exit 1 (S-9). */
    private static final class CannotListen extends Exception {
        private static final long serialVersionUID = 1L;

        CannotListen(String message) {
            super(message);
        }
    }

    private Server(Options options) {
        this.options = options;
    }

    /** Serve until SIGTERM/SIGINT (S-4); return the exit status when it cannot listen or announce (S-9). */
    static int run(Options options) {
        // S-11: whatever escapes a thread is one line, never the JVM's stack trace
        Thread.setDefaultUncaughtExceptionHandler(
                (thread, e) -> Cli.log("warning: thread " + thread.getName() + ": " + describe(e)));
        try {
            return new Server(options).serve();
        } catch (CannotListen e) {
            Cli.error(e.getMessage());
            return Cli.EXIT_FAILURE;
        }
    }

    /** Bind the first address the host resolves to (S-7); any failure is CannotListen (S-9). */
    private ServerSocket listen() throws CannotListen {
        String host = options.host();
        int port = options.port();
        InetAddress address;
        try {
            address = InetAddress.getAllByName(host)[0];
        } catch (UnknownHostException e) {
            throw new CannotListen("cannot listen on " + host + ":" + port + ": unknown host");
        } catch (SecurityException | IllegalArgumentException e) {
            throw new CannotListen("cannot listen on " + host + ":" + port + ": " + e.getMessage());
        }
        InetSocketAddress where = new InetSocketAddress(address, port);
        ServerSocket socket = null;
        try {
            socket = new ServerSocket();
            socket.setReuseAddress(true);
            socket.bind(where, BACKLOG);
            return socket;
        } catch (IOException e) {
            if (socket != null) {
                try {
                    socket.close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
            throw new CannotListen("cannot listen on " + format(where) + ": " + e.getMessage());
        }
    }

    /** Listen, announce, accept until the shutdown hook stops us, then drain (S-4). */
    private int serve() throws CannotListen {
        warmUp();
        ServerSocket socket = listen();
        listener = socket;
        Thread hook = new Thread(() -> {
            stop();
            try {
                drained.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Runtime.getRuntime().halt(0);
        }, "shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            byte[] ready = ("listening on " + format(socket.getLocalSocketAddress()) + "\n")
                    .getBytes(StandardCharsets.US_ASCII);
            if (!Cli.writeStdout(ready, ready.length)) { // S-8: unbuffered, so already flushed
                // S-9, X-6: exit 1; the hook must not turn that exit into a drain and a 0
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException e) {
                    return 0; // a signal came first: the hook is already stopping us (S-4)
                }
                closeQuietly(socket);
                return Cli.EXIT_FAILURE;
            }
            if (options.idleTimeoutMs() > 0) {
                Thread watchdog = new Thread(this::watch, "watchdog");
                watchdog.setDaemon(true);
                watchdog.start();
            }
            acceptUntilStopped(socket);
            drain();
        } finally {
            drained.countDown();
        }
        return 0; // reached once the hook stopped us: the JVM is shutting down and the hook exits 0
    }

    /**
     * Initialise, while descriptors are plentiful, what the JDK sets up
     * lazily on a socket's first accept, read, write, shutdown and close:
     * FileDispatcherImpl's one-time set-up needs a descriptor and, if it fails
     * under EMFILE, fails for good (S-10). Best effort: without a loopback
     * interface there is nothing to warm up with.
     */
    private static void warmUp() {
        try (ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                Socket client = new Socket()) {
            client.connect(listener.getLocalSocketAddress(), 1000);
            try (Socket accepted = listener.accept()) {
                client.getOutputStream().write('a');
                byte[] one = new byte[1];
                if (accepted.getInputStream().read(one) == 1) {
                    accepted.getOutputStream().write(one);
                    client.getInputStream().read(one);
                }
                accepted.shutdownInput();
                accepted.setSoLinger(true, 0);
            }
        } catch (IOException | RuntimeException e) {
            // best effort
        }
    }

    private void acceptUntilStopped(ServerSocket socket) {
        while (!stopping) {
            Socket client;
            try {
                client = socket.accept();
            } catch (IOException | RuntimeException | Error e) { // Error: e.g. OutOfMemoryError
                if (stopping || socket.isClosed()) {
                    break;
                }
                // S-10: out of descriptors or memory: keep serving the open connections, retry in a while
                diagnostic("accept failed: " + describe(e));
                sleep(isResourceShortage(e) ? ACCEPT_BACKOFF_MS : 10);
                continue;
            }
            admit(client);
        }
    }

    /** S-10: EMFILE, ENFILE, ENOBUFS, ENOMEM, or the JVM's own memory: what backing off can help with. */
    private static boolean isResourceShortage(Throwable e) {
        if (e instanceof Error) {
            return true;
        }
        String message = String.valueOf(e.getMessage()).toLowerCase(Locale.ROOT);
        return message.contains("too many open files") || message.contains("no buffer space")
                || message.contains("cannot allocate memory") || message.contains("out of memory");
    }

    /** S-10, S-11: one line, at most one a second; the count of lines left out follows on the next. */
    private synchronized void diagnostic(String message) { // the accept and watchdog threads
        long now = System.nanoTime();
        if (now - lastDiagnostic < DIAGNOSTIC_INTERVAL_NS) {
            leftOut++;
            return;
        }
        Cli.log("warning: " + message + (leftOut > 0 ? " (" + leftOut + " more since the last warning)" : ""));
        lastDiagnostic = now;
        leftOut = 0;
    }

    /** An exception as one line (S-11): its class and message, never a stack trace. */
    static String describe(Throwable e) {
        String message = e.getMessage();
        String text = message == null ? e.getClass().getName() : e instanceof IOException ? message
                : e.getClass().getName() + ": " + message;
        return text.replace('\n', ' ').replace('\r', ' ');
    }

    private void admit(Socket client) {
        String peer = format(client.getRemoteSocketAddress()); // the address accept reported (S-6)
        synchronized (lock) {
            if (openCount >= options.maxConnections()) {
                Cli.log("reject peer=" + peer); // S-3: reset, without data, whatever the peer sent
                reset(client);
                return;
            }
            openCount++;
            liveCount++;
        }
        Connection connection = new Connection(client, peer);
        open.add(connection);
        try {
            Thread thread = new Thread(null, connection, "connection", CONNECTION_STACK);
            thread.setDaemon(true);
            thread.start();
        } catch (OutOfMemoryError e) { // "unable to create native thread": S-10 as for accept
            Cli.log("open peer=" + peer); // S-6: every accepted connection is logged
            released(connection);
            reset(client);
            connection.logClose();
            finished(connection);
            diagnostic("cannot start a thread for a connection: " + describe(e));
            sleep(ACCEPT_BACKOFF_MS);
        }
    }

    /** S-2: every connection with no progress for the idle timeout is closed (read side) or reset (write side). */
    private void watch() {
        long idleNs = options.idleTimeoutMs() * 1_000_000L;
        long tickMs = Math.max(10, Math.min(100, options.idleTimeoutMs() / 20));
        while (drained.getCount() > 0) { // also while draining (S-4): the idle timeout still holds
            sleep(tickMs);
            long now = System.nanoTime();
            for (Connection connection : open) {
                try {
                    connection.checkIdle(now, idleNs);
                } catch (RuntimeException | Error e) {
                    diagnostic("idle check failed: " + describe(e));
                }
            }
        }
    }

    /**
     * Free the connection's --max-connections slot. Called before its socket is
     * closed, so a client that has seen the close can count on the slot (S-3).
     */
    private void released(Connection connection) {
        synchronized (lock) {
            if (connection.slotHeld) {
                connection.slotHeld = false;
                openCount--;
            }
        }
    }

    private void finished(Connection connection) {
        released(connection);
        open.remove(connection);
        synchronized (lock) {
            liveCount--;
            lock.notifyAll();
        }
    }

    /** S-4, step 1: stop accepting. New connects are refused once the listener is closed. */
    private void stop() {
        stopping = true;
        ServerSocket socket = listener;
        if (socket != null) {
            closeQuietly(socket);
        }
    }

    /** S-4, step 2: let open connections finish for the drain timeout, then close the rest. */
    private void drain() {
        waitForConnections(options.drainTimeoutMs());
        for (Connection connection : open) {
            connection.abort(); // reset, whatever its state: also a thread blocked writing to a non-reader
        }
        waitForConnections(ABORT_GRACE_MS);
        for (Connection connection : open) {
            connection.logClose(); // a thread that has not come out yet: its close line is still owed (S-6)
        }
    }

    private void waitForConnections(long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        synchronized (lock) {
            while (liveCount > 0) {
                long left = (deadline - System.nanoTime()) / 1_000_000L;
                if (left <= 0) {
                    return;
                }
                try {
                    lock.wait(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Numeric ADDR:PORT, IPv6 in brackets and in its shortest form ([::1]:40000), as S-6 and S-8 say. */
    static String format(SocketAddress address) {
        if (!(address instanceof InetSocketAddress)) {
            return String.valueOf(address);
        }
        InetSocketAddress a = (InetSocketAddress) address;
        InetAddress ip = a.getAddress();
        if (ip == null) {
            return a.getHostString() + ":" + a.getPort();
        }
        if (ip instanceof Inet6Address) {
            return "[" + Quirks.ipv6Text((Inet6Address) ip) + "]:" + a.getPort();
        }
        return ip.getHostAddress() + ":" + a.getPort();
    }

    private static void closeQuietly(AutoCloseable closeable) {
        try {
            closeable.close();
        } catch (Exception | Error ignored) {
            // closing is best effort; an Error here must not cost the close line (S-6, S-11)
        }
    }

    /** Close with SO_LINGER 0: the peer sees a reset (S-2, S-3, S-4). */
    private static void reset(Socket socket) {
        try {
            socket.setSoLinger(true, 0);
        } catch (IOException | RuntimeException | Error ignored) {
            // already closed or reset: closing is all that is left
        }
        closeQuietly(socket);
    }

    /** One client session: read, transform, write; idle timeout; one open and one close line (S-6). */
    private final class Connection implements Runnable {
        private final Socket socket;
        private final String peer;
        private boolean slotHeld = true; // guarded by lock
        /** Counters, read by the drain when it logs the close line for a thread that is stuck (S-4). */
        private volatile long received;
        private volatile long sent;
        /** S-2: System.nanoTime() of the last progress: bytes read, or a write the kernel took whole. */
        private volatile long lastProgress = System.nanoTime();
        /** S-2: in a write, so no progress means the peer stopped taking the answer. */
        private volatile boolean writing;
        /** S-2: the watchdog shut the input down: the read side timed out. */
        private volatile boolean inputShut;
        private final AtomicBoolean closeLogged = new AtomicBoolean();

        Connection(Socket socket, String peer) {
            this.socket = socket;
            this.peer = peer;
        }

        /** S-4: at the drain timeout, reset whatever state the connection is in. */
        void abort() {
            reset(socket);
        }

        /** S-2, from the watchdog thread. */
        void checkIdle(long now, long idleNs) {
            if (now - lastProgress < idleNs) {
                return;
            }
            if (writing) {
                reset(socket); // the peer stopped taking the answer: it must not hold a slot for good
            } else if (!inputShut) {
                // Idle in read: the blocked read returns EOF, the thread answers the held-back tail and
                // closes in order (E-2). The tail's write gets a fresh idle timeout of its own.
                inputShut = true;
                lastProgress = now;
                try {
                    socket.shutdownInput();
                } catch (IOException e) {
                    reset(socket);
                }
            }
        }

        /** The one close line (S-6), written by whichever of the connection thread and the drain comes first. */
        void logClose() {
            if (closeLogged.compareAndSet(false, true)) {
                Cli.log("close peer=" + peer + " in=" + received + " out=" + sent);
            }
        }

        @Override
        public void run() {
            Cli.log("open peer=" + peer);
            try {
                serve();
            } catch (IOException e) {
                // S-5: a reset, a broken pipe or an abort at the drain timeout ends this connection only
            } catch (RuntimeException | Error e) {
                Cli.log("warning: peer=" + peer + ": " + describe(e));
            } finally {
                released(this);
                closeQuietly(socket);
                logClose();
                finished(this);
            }
        }

        private void serve() throws IOException {
            InputStream in = socket.getInputStream();
            OutputStream out = socket.getOutputStream();
            Transducer transducer = new Transducer(table);
            byte[] buffer = new byte[INITIAL_READ_BUFFER];
            while (true) {
                int n = in.read(buffer); // blocking, no SO_TIMEOUT: the watchdog does S-2
                if (n < 0) { // EOF, or the watchdog shut the input down (S-2): answer the held-back tail (E-2)
                    int owed = transducer.flush(); // first: it may replace output()
                    send(out, transducer.output(), owed);
                    return; // E-1: everything owed is sent; the finally block closes
                }
                lastProgress = System.nanoTime();
                received += n;
                // A blocking write: while the client does not read, this thread does not read either (D-5).
                int owed = transducer.feed(buffer, 0, n); // first: it may replace output()
                send(out, transducer.output(), owed);
                if (n == buffer.length && buffer.length < MAX_READ_BUFFER) {
                    buffer = new byte[Math.min(buffer.length * 4, MAX_READ_BUFFER)];
                }
            }
        }

        private void send(OutputStream out, byte[] data, int length) throws IOException {
            if (length > 0) {
                writing = true;
                try {
                    out.write(data, 0, length);
                } finally {
                    writing = false;
                }
                lastProgress = System.nanoTime();
                sent += length;
            }
        }
    }
}
