package upperecho;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

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
 * Shutdown (S-4): SIGTERM/SIGINT are caught with sun.misc.Signal (jdk.unsupported,
 * no flags needed), not a shutdown hook, because a hook cannot choose the exit
 * status (the JVM would exit 143). The handler closes the listener (new
 * connects are refused); the accept loop then drains and the process exits 0.
 */
final class Server {
    static final int MAX_READ_BUFFER = 64 * 1024; // D-4
    private static final int INITIAL_READ_BUFFER = 4 * 1024;
    private static final long CONNECTION_STACK = 256 * 1024;
    private static final int BACKLOG = 4096;
    /** After the drain timeout, how long to wait for aborted connections to log their close line. */
    private static final long ABORT_GRACE_MS = 2000;

    private final String host;
    private final int port;
    private final int idleTimeoutMs;
    private final long maxConnections;
    private final long drainTimeoutMs;
    private final UppercaseTable table;

    private final Set<Connection> open = ConcurrentHashMap.newKeySet();
    private final Object lock = new Object();
    /** Connections counted against --max-connections; freed just before the socket closes. Guarded by lock. */
    private int openCount;
    /** Connection threads that have not yet logged their close line (what the drain waits for). Guarded by lock. */
    private int liveCount;
    private volatile boolean stopping;
    private volatile ServerSocket listener;

    /** Cannot listen: exit 1 (S-9). */
    static final class CannotListen extends Exception {
        CannotListen(String message) {
            super(message);
        }
    }

    Server(String host, int port, long idleTimeoutMs, long maxConnections, long drainTimeoutMs) {
        this.host = host;
        this.port = port;
        this.idleTimeoutMs = (int) Math.min(idleTimeoutMs, Integer.MAX_VALUE);
        this.maxConnections = maxConnections;
        this.drainTimeoutMs = drainTimeoutMs;
        this.table = UppercaseTable.get();
    }

    /** Bind the first address the host resolves to (S-7); any failure is CannotListen (S-9). */
    private ServerSocket listen() throws CannotListen {
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
            throw new CannotListen("cannot listen on " + Io.format(where) + ": " + e.getMessage());
        }
    }

    /** Serve until SIGTERM/SIGINT, then drain (S-4). Returns the exit status. */
    int run() throws CannotListen {
        ServerSocket socket = listen();
        listener = socket;
        installSignalHandlers();
        try {
            Io.STDOUT.write(("listening on " + Io.format(socket.getLocalSocketAddress()) + "\n")
                    .getBytes(StandardCharsets.US_ASCII)); // S-8: unbuffered, so already flushed
        } catch (IOException e) {
            Io.log("warning: cannot write the readiness line: " + e.getMessage());
        }
        while (!stopping) {
            Socket client;
            try {
                client = socket.accept();
            } catch (IOException e) {
                if (stopping || socket.isClosed()) {
                    break;
                }
                // e.g. out of file descriptors: say so, back off a little, keep serving
                Io.log("warning: accept failed: " + e.getMessage());
                sleep(50);
                continue;
            }
            admit(client);
        }
        drain();
        return 0;
    }

    private void admit(Socket client) {
        synchronized (lock) {
            if (openCount >= maxConnections) {
                Io.log("reject peer=" + Io.format(client.getRemoteSocketAddress())); // S-3
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
            Io.log("warning: cannot start a thread for peer=" + Io.format(client.getRemoteSocketAddress())
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

    private void installSignalHandlers() {
        for (String name : new String[] {"TERM", "INT"}) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(name), signal -> stop());
            } catch (IllegalArgumentException e) {
                Io.log("warning: cannot handle SIG" + name + ": " + e.getMessage());
            }
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
        waitForConnections(drainTimeoutMs);
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
            String peer = Io.format(socket.getRemoteSocketAddress());
            Io.log("open peer=" + peer);
            try {
                serve();
            } catch (IOException e) {
                // S-5: a reset, a broken pipe or an abort at the drain timeout ends this connection only
            } catch (RuntimeException | Error e) {
                Io.log("warning: peer=" + peer + ": " + e);
            } finally {
                released(this);
                closeQuietly(socket);
                Io.log("close peer=" + peer + " in=" + received + " out=" + sent);
                finished(this);
            }
        }

        private void serve() throws IOException {
            socket.setSoTimeout(idleTimeoutMs); // S-2; 0 = off
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
