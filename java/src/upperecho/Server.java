// The server (spec/PROTOCOL.md section 5): one thread per connection, S-4 drain from a shutdown hook.
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
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;

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
    private static final int BACKLOG = 4096;
    /** After the drain timeout, how long to wait for aborted connections to log their close line. */
    private static final long ABORT_GRACE_MS = 2000;

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
            acceptUntilStopped(socket);
            drain();
        } finally {
            drained.countDown();
        }
        return 0; // reached once the hook stopped us: the JVM is shutting down and the hook exits 0
    }

    private void acceptUntilStopped(ServerSocket socket) {
        while (!stopping) {
            Socket client;
            try {
                client = socket.accept();
            } catch (IOException e) {
                if (stopping || socket.isClosed()) {
                    break;
                }
                // e.g. out of file descriptors: say so, back off a little, keep serving
                Cli.log("warning: accept failed: " + e.getMessage());
                sleep(50);
                continue;
            }
            admit(client);
        }
    }

    private void admit(Socket client) {
        synchronized (lock) {
            if (openCount >= options.maxConnections()) {
                Cli.log("reject peer=" + format(client.getRemoteSocketAddress())); // S-3
                closeQuietly(client);
                return;
            }
            openCount++;
            liveCount++;
        }
        Connection connection = new Connection(client);
        open.add(connection);
        try {
            Thread thread = new Thread(null, connection, "connection", CONNECTION_STACK);
            thread.setDaemon(true);
            thread.start();
        } catch (OutOfMemoryError e) { // "unable to create native thread"
            Cli.log("warning: cannot start a thread for peer=" + format(client.getRemoteSocketAddress())
                    + ": " + e.getMessage());
            closeQuietly(client);
            finished(connection);
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
            connection.abort();
        }
        waitForConnections(ABORT_GRACE_MS);
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
        } catch (Exception ignored) {
            // closing is best effort
        }
    }

    /** One client session: read, transform, write; idle timeout; one open and one close line (S-6). */
    private final class Connection implements Runnable {
        private final Socket socket;
        private boolean slotHeld = true; // guarded by lock
        private long received;
        private long sent;

        Connection(Socket socket) {
            this.socket = socket;
        }

        void abort() {
            closeQuietly(socket);
        }

        @Override
        public void run() {
            String peer = format(socket.getRemoteSocketAddress());
            Cli.log("open peer=" + peer);
            try {
                serve();
            } catch (IOException e) {
                // S-5: a reset, a broken pipe or an abort at the drain timeout ends this connection only
            } catch (RuntimeException | Error e) {
                Cli.log("warning: peer=" + peer + ": " + e);
            } finally {
                released(this);
                closeQuietly(socket);
                Cli.log("close peer=" + peer + " in=" + received + " out=" + sent);
                finished(this);
            }
        }

        private void serve() throws IOException {
            socket.setSoTimeout(options.idleTimeoutMs()); // S-2; 0 = off
            InputStream in = socket.getInputStream();
            OutputStream out = socket.getOutputStream();
            Transducer transducer = new Transducer(table);
            byte[] buffer = new byte[INITIAL_READ_BUFFER];
            while (true) {
                int n;
                try {
                    n = in.read(buffer);
                } catch (SocketTimeoutException idle) {
                    n = -1; // S-2: idle; answer the held-back tail as at EOF (E-2)
                }
                if (n < 0) {
                    int owed = transducer.flush(); // first: it may replace output()
                    send(out, transducer.output(), owed);
                    return; // E-1: everything owed is sent; the finally block closes
                }
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
                out.write(data, 0, length);
                sent += length;
            }
        }
    }
}
