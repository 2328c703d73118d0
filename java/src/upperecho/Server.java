// The server (spec/PROTOCOL.md section 5): one NIO event loop serves every connection; S-4 drain via a shutdown hook.
package upperecho;

import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.function.Consumer;

/**
 * The server (spec/PROTOCOL.md section 5): non-blocking NIO, one event loop
 * thread that reads, transforms and writes every connection itself.
 *
 * Why not a thread per connection (what this server was until the speed
 * issue): in ping-pong every request then wakes one blocked thread, and on a
 * 2-core machine that wake-up is the cost. Profiled at 100 connections
 * (perf stat / perf record on the server, bench/loadgen pingpong): one context
 * switch per request (224k for 220k requests) and ~38% of the server's CPU in
 * the scheduler (finish_task_switch under schedule_timeout from the blocking
 * read), for 0.59x the C epoll baseline. A ServerSocket design cannot batch
 * those wake-ups; an event loop takes every ready connection from one
 * epoll_wait and serves it inline, with no hand-off to another thread, like
 * the baseline: read + write per request and a share of one epoll_wait.
 *
 * The sans-I/O Transducer stays the protocol core: this class only moves bytes
 * between sockets and it (feed, flush, output).
 *
 * Memory (D-4): one 64 KiB read buffer shared by the loop (only one
 * connection reads at a time), so an idle connection costs its channel, key,
 * transducer and this class's state, no buffer. Each transducer reuses its
 * output buffer (the transform's output for one read).
 *
 * Backpressure (D-5): when the kernel does not take the whole answer, the
 * rest stays in the transducer's output, the connection stops reading
 * (interest OP_WRITE only) until it is sent, then reads again. A connection
 * that does not read delays no other (S-1): nothing in the loop blocks on a
 * socket.
 *
 * Idle timeout (S-2): the loop records the time of each connection's last
 * progress (a read that returned bytes, a write the kernel took bytes of) and
 * scans them a few times a second. Idle with nothing waiting to be sent: the
 * held-back tail is answered (E-2) and the connection closes in order; idle
 * with an answer waiting (the peer stopped taking it): reset.
 *
 * File descriptors (S-10): the JDK initialises sun.nio.ch.FileDispatcherImpl
 * on the first socket close, and that initialisation needs a descriptor of
 * its own; if it first happens under EMFILE the class is broken for good and
 * no socket can ever be closed again. So the server closes a loopback
 * socket pair before it listens (warmUp). A failed accept stops accepting
 * (no OP_ACCEPT interest, so the loop does not spin on a full backlog) for
 * 100 ms, with at most one diagnostic line a second.
 *
 * Shutdown (S-4): the JVM turns SIGTERM/SIGINT/SIGHUP into its shutdown
 * sequence, which runs our shutdown hook (a supported API; sun.misc.Signal is
 * not). A signal ignored when the JVM started stays ignored, as S-4 wants
 * for SIGHUP under nohup. The hook is in place before the readiness line, so
 * a signal the instant after it is acted on.
 * The hook tells the loop to stop and waits: the loop closes the listener
 * (new connects are refused), serves the open connections until they finish
 * or the drain timeout, resets the rest and logs their close lines. The hook
 * then ends the process with Runtime.halt(0): a hook that returned would let
 * the JVM exit 143 or 130, and S-4 says 0.
 */
final class Server {
    /** `upper-echo server` (S-7), the timeouts in milliseconds (0 = off for the idle timeout). */
    record Options(String host, int port, int idleTimeoutMs, int maxConnections, int drainTimeoutMs) {
    }

    static final int MAX_READ_BUFFER = 64 * 1024; // D-4
    private static final int BACKLOG = 1024; // S-12
    /** S-10: pause accepting this long after a failed accept. */
    private static final long ACCEPT_BACKOFF_MS = 100;
    /** After other accept failures (not a shortage): a short pause, still no spinning. */
    private static final long ACCEPT_RETRY_MS = 10;
    /** At most this many accepts per loop turn, so a connect burst does not starve the open connections (S-1). */
    private static final int ACCEPT_BATCH = 64;
    /** At most this many full reads of one connection per loop turn (256 KiB), so a stream does not starve others. */
    private static final int READS_PER_EVENT = 4;
    /** S-10: at most one accept diagnostic per this many nanoseconds. */
    private static final long DIAGNOSTIC_INTERVAL_NS = 1_000_000_000L;
    private static final long MS = 1_000_000L;

    private final Options options;
    private final Table table = Table.get();
    /** The loop's one read buffer (D-4): every connection reads into it and feeds its transducer at once. */
    private final byte[] readArray = new byte[MAX_READ_BUFFER];
    private final ByteBuffer readBuffer = ByteBuffer.wrap(readArray);
    /** What select calls for each ready key (one object, not one per select). */
    private final Consumer<SelectionKey> onReady = this::ready;

    private Selector selector;
    private ServerSocketChannel listener;
    private SelectionKey listenerKey;
    /** The open connections (each knows its index), for the idle scan and the drain. Loop thread only. */
    private Connection[] connections = new Connection[64];
    private int count;
    /** The loop's clock: System.nanoTime() once select returned (read once per select, not per event). */
    private long now;
    /** Whether now has been read since the last select returned. */
    private boolean clockFresh;
    /** S-10: accepting is paused until this time (when acceptPaused). */
    private boolean acceptPaused;
    private long acceptResumeAt;
    /** S-2: the next idle scan. */
    private long nextIdleScan;
    /** S-4: set by the shutdown hook; the loop then stops accepting and drains. */
    private volatile boolean stopping;
    private boolean draining;
    private long drainDeadline;
    /** Counted down once the loop has drained (S-4): then the shutdown hook may end the process. */
    private final CountDownLatch drained = new CountDownLatch(1);
    /** S-10: when the last diagnostic was written, and how many were left out since. Loop thread only. */
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

    /** Serve until SIGTERM/SIGINT/SIGHUP (S-4); return the exit status when it cannot listen or announce (S-9). */
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
    private ServerSocketChannel listen() throws CannotListen {
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
        ServerSocketChannel socket = null;
        try {
            // The address's own family: an IPv6 socket bound to 0.0.0.0 would take IPv6 connections too (S-8).
            socket = ServerSocketChannel.open(address instanceof Inet6Address ? StandardProtocolFamily.INET6
                    : StandardProtocolFamily.INET);
            socket.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            socket.bind(where, BACKLOG);
            socket.configureBlocking(false);
            return socket;
        } catch (IOException | UnsupportedOperationException e) {
            if (socket != null) {
                closeQuietly(socket);
            }
            throw new CannotListen("cannot listen on " + format(where) + ": " + e.getMessage());
        }
    }

    /** Listen, announce, serve until the shutdown hook stops us and the loop has drained (S-4). */
    private int serve() throws CannotListen {
        warmUp();
        try {
            selector = Selector.open();
        } catch (IOException e) {
            throw new CannotListen("cannot listen: " + e.getMessage());
        }
        ServerSocketChannel socket = listen();
        listener = socket;
        Thread hook = new Thread(() -> {
            stopping = true;
            selector.wakeup();
            try {
                drained.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Runtime.getRuntime().halt(0);
        }, "shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            byte[] ready = ("listening on " + format(socket.getLocalAddress()) + "\n")
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
            listenerKey = socket.register(selector, SelectionKey.OP_ACCEPT);
            loop();
        } catch (IOException | RuntimeException | Error e) { // the selector itself failed: nothing can be served
            Cli.error("event loop: " + describe(e));
            abortAll();
            try {
                selector.selectNow();
            } catch (IOException | RuntimeException ignored) {
                // the descriptors go with the process
            }
            if (!stopping) {
                try {
                    Runtime.getRuntime().removeShutdownHook(hook); // exit 1, not the hook's drain and 0
                    return Cli.EXIT_FAILURE;
                } catch (IllegalStateException ignored) {
                    // a signal came first: the hook is already stopping us (S-4)
                }
            }
        } finally {
            drained.countDown();
        }
        return 0; // reached once the hook stopped us: the JVM is shutting down and the hook exits 0
    }

    /**
     * Initialise, while descriptors are plentiful, what the JDK sets up
     * lazily on a channel's first accept, read, write and close:
     * FileDispatcherImpl's one-time set-up needs a descriptor and, if it fails
     * under EMFILE, fails for good (S-10). Best effort: without a loopback
     * interface there is nothing to warm up with.
     */
    static void warmUp() { // also bin/cds-archive's training run (Train), so the class-data archive has these classes
        try (ServerSocketChannel listener = ServerSocketChannel.open();
                SocketChannel client = SocketChannel.open()) {
            listener.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 1);
            client.connect(listener.getLocalAddress());
            try (SocketChannel accepted = listener.accept()) {
                accepted.configureBlocking(false);
                client.write(ByteBuffer.wrap(new byte[] {'a'}));
                ByteBuffer one = ByteBuffer.allocate(1);
                try (Selector selector = Selector.open()) {
                    accepted.register(selector, SelectionKey.OP_READ);
                    selector.select(1000);
                    if (accepted.read(one) == 1) {
                        one.flip();
                        accepted.write(one);
                        one.clear();
                        client.read(one);
                    }
                }
                accepted.setOption(StandardSocketOptions.SO_LINGER, 0);
            }
        } catch (IOException | RuntimeException e) {
            // best effort
        }
    }

    /** The event loop: serve ready connections, accept, scan for idle ones, drain when stopping (S-4). */
    private void loop() throws IOException {
        boolean idleOn = options.idleTimeoutMs() > 0;
        long tickNs = Math.max(10, Math.min(100, options.idleTimeoutMs() / 20)) * MS;
        now = System.nanoTime();
        nextIdleScan = now + tickNs;
        while (true) {
            long waitNs = Long.MAX_VALUE; // for ever, until a connection or the hook wakes the loop
            if (idleOn) {
                waitNs = Math.min(waitNs, nextIdleScan - now);
            }
            if (acceptPaused) {
                waitNs = Math.min(waitNs, acceptResumeAt - now);
            }
            if (draining) {
                waitNs = Math.min(waitNs, drainDeadline - now);
            } else if (stopping) {
                waitNs = 0;
            }
            clockFresh = false; // the first ready key reads the clock: a select may have waited long
            if (waitNs <= 0) {
                selector.selectNow(onReady);
            } else {
                // select(0) waits for ever; round up, so a wait due within the millisecond is not a busy loop
                selector.select(onReady, waitNs == Long.MAX_VALUE ? 0 : (waitNs + MS - 1) / MS);
            }
            now = System.nanoTime();
            if (acceptPaused && now - acceptResumeAt >= 0 && !draining) {
                acceptPaused = false;
                listenerKey.interestOps(SelectionKey.OP_ACCEPT);
            }
            if (idleOn && now - nextIdleScan >= 0) {
                nextIdleScan = scanIdle(tickNs);
            }
            if (stopping && !draining) {
                startDrain();
            }
            if (draining && (count == 0 || now - drainDeadline >= 0)) {
                abortAll(); // S-4: the drain timeout ran out: reset what is still open
                break;
            }
        }
        selector.selectNow(); // the closed channels' descriptors are released (FIN or RST goes out) here
    }

    /** One ready key: the listener, or a connection. */
    private void ready(SelectionKey key) {
        if (!clockFresh) {
            now = System.nanoTime();
            clockFresh = true;
        }
        Object attachment = key.attachment();
        if (attachment instanceof Connection) {
            Connection connection = (Connection) attachment;
            try {
                int ops = key.readyOps();
                if ((ops & SelectionKey.OP_WRITE) != 0) {
                    connection.writable();
                }
                if ((ops & SelectionKey.OP_READ) != 0 && connection.open && connection.key.isValid()
                        && (connection.key.interestOps() & SelectionKey.OP_READ) != 0) {
                    connection.readable();
                }
            } catch (RuntimeException | Error e) {
                Cli.log("warning: peer=" + connection.peer + ": " + describe(e));
                connection.close(true);
            }
        } else if (key.isValid() && key.isAcceptable()) {
            acceptSome();
        }
    }

    /** Accept what the backlog holds (a batch at a time); on failure pause accepting (S-10). */
    private void acceptSome() {
        for (int i = 0; i < ACCEPT_BATCH && !stopping; i++) {
            SocketChannel client;
            try {
                client = listener.accept();
            } catch (IOException | RuntimeException | Error e) { // Error: e.g. OutOfMemoryError
                // S-10: out of descriptors or memory: keep serving the open connections, retry in a while
                diagnostic("accept failed: " + describe(e));
                pauseAccepting(isResourceShortage(e) ? ACCEPT_BACKOFF_MS : ACCEPT_RETRY_MS);
                return;
            }
            if (client == null) {
                return;
            }
            admit(client);
        }
    }

    private void pauseAccepting(long ms) {
        acceptPaused = true;
        acceptResumeAt = System.nanoTime() + ms * MS;
        if (listenerKey.isValid()) {
            listenerKey.interestOps(0);
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
    private void diagnostic(String message) {
        long time = System.nanoTime();
        if (time - lastDiagnostic < DIAGNOSTIC_INTERVAL_NS) {
            leftOut++;
            return;
        }
        Cli.log("warning: " + message + (leftOut > 0 ? " (" + leftOut + " more since the last warning)" : ""));
        lastDiagnostic = time;
        leftOut = 0;
    }

    /** An exception as one line (S-11): its class and message, never a stack trace. */
    static String describe(Throwable e) {
        String message = e.getMessage();
        String text = message == null ? e.getClass().getName() : e instanceof IOException ? message
                : e.getClass().getName() + ": " + message;
        return text.replace('\n', ' ').replace('\r', ' ');
    }

    /** A connection accept returned: reject it (S-3) or register it with the loop; logged either way (S-6). */
    private void admit(SocketChannel client) {
        String peer;
        try {
            peer = format(client.getRemoteAddress()); // the address accept reported (S-6)
        } catch (IOException | RuntimeException e) {
            peer = "unknown:0";
        }
        if (count >= options.maxConnections()) {
            Cli.log("reject peer=" + peer); // S-3: reset, without data, whatever the peer sent
            reset(client);
            return;
        }
        Cli.log("open peer=" + peer);
        Connection connection = new Connection(client, peer);
        try {
            client.configureBlocking(false);
            connection.key = client.register(selector, SelectionKey.OP_READ, connection);
        } catch (IOException | RuntimeException | Error e) { // e.g. reset already, or out of memory
            reset(client);
            connection.logClose();
            if (e instanceof Error) {
                diagnostic("cannot register a connection: " + describe(e));
                pauseAccepting(ACCEPT_BACKOFF_MS);
            }
            return;
        }
        connection.lastProgress = now;
        if (count == connections.length) {
            connections = Arrays.copyOf(connections, count * 2);
        }
        connection.index = count;
        connections[count++] = connection;
    }

    /** Forget a closed connection: its --max-connections slot is free (before its socket closes: S-3). */
    private void remove(Connection connection) {
        int i = connection.index;
        Connection last = connections[--count];
        connections[i] = last;
        last.index = i;
        connections[count] = null;
        if (connections.length > 64 && count < connections.length / 4) {
            connections = Arrays.copyOf(connections, connections.length / 2);
        }
    }

    /**
     * S-2: every connection with no progress for the idle timeout is closed in
     * order, or reset if stalled. Returns when to scan next: when the oldest
     * progress left turns idle (progress only moves later, and a new
     * connection starts with a whole timeout), but not sooner than a tick
     * from now. So 10,000 idle connections cost a scan per idle timeout, not
     * one per tick.
     */
    private long scanIdle(long tickNs) {
        long idleNs = options.idleTimeoutMs() * MS;
        long oldest = now;
        for (int i = count - 1; i >= 0; i--) { // from the end: a close moves the last one into slot i
            Connection connection = connections[i];
            if (now - connection.lastProgress >= idleNs) {
                try {
                    connection.idle();
                } catch (RuntimeException | Error e) {
                    diagnostic("idle check failed: " + describe(e));
                    connection.close(true);
                }
            }
            if (connection.open && connection.lastProgress - oldest < 0) {
                oldest = connection.lastProgress;
            }
        }
        long next = oldest + idleNs;
        return next - (now + tickNs) < 0 ? now + tickNs : next;
    }

    /** S-4, step 1: stop accepting (new connects are refused), then let open connections finish. */
    private void startDrain() {
        draining = true;
        drainDeadline = now + options.drainTimeoutMs() * MS;
        acceptPaused = false;
        if (listenerKey != null) {
            listenerKey.cancel();
        }
        closeQuietly(listener);
        try {
            clockFresh = false;
            selector.selectNow(onReady); // deregisters the listener: its descriptor is closed now
        } catch (IOException e) {
            Cli.log("warning: event loop: " + describe(e));
        }
    }

    /** S-4, step 2: at the drain timeout, reset whatever is still open, whatever its state, and log it. */
    private void abortAll() {
        while (count > 0) {
            connections[count - 1].close(true);
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
    private static void reset(SocketChannel socket) {
        try {
            socket.setOption(StandardSocketOptions.SO_LINGER, 0);
        } catch (IOException | RuntimeException | Error ignored) {
            // already closed or reset: closing is all that is left
        }
        closeQuietly(socket);
    }

    /** One client session: read, transform, write, with backpressure; one open and one close line (S-6). */
    private final class Connection {
        private final SocketChannel channel;
        private final String peer;
        private final Transducer transducer = new Transducer(table);
        SelectionKey key;
        int index;
        boolean open = true;
        long received;
        long sent;
        /** S-2: the loop's clock at the last progress: bytes read, or bytes of the answer the kernel took. */
        long lastProgress;
        /** The answer not yet taken by the kernel: a view of transducer.output(); null when nothing waits. */
        private ByteBuffer pending;
        private ByteBuffer view;
        /** The client half-closed (E-1): once everything owed is sent, the connection closes. */
        private boolean inputDone;

        Connection(SocketChannel channel, String peer) {
            this.channel = channel;
            this.peer = peer;
        }

        /**
         * OP_READ: a read into the loop's buffer, its answer sent at once (D-2) or kept for OP_WRITE (D-5).
         * A read that filled the buffer is likely a stream with more waiting: read again, a few times at
         * most (S-1: other connections wait meanwhile), without a select in between.
         */
        void readable() {
            for (int reads = 0; reads < READS_PER_EVENT; reads++) {
                readBuffer.clear();
                int n;
                try {
                    n = channel.read(readBuffer);
                } catch (IOException e) {
                    close(true); // S-5: a reset ends this connection only
                    return;
                }
                if (n == 0) {
                    return;
                }
                if (n < 0) { // EOF (E-1): answer the held-back tail unchanged, everything owed, then close
                    inputDone = true;
                    answer(transducer.flush());
                    return;
                }
                received += n;
                lastProgress = now;
                answer(transducer.feed(readArray, 0, n));
                if (n < readArray.length || pending != null || !open) {
                    return;
                }
            }
        }

        /** Send the transducer's output (owed bytes of it); what the kernel does not take waits for OP_WRITE. */
        private void answer(int owed) {
            if (owed > 0) {
                byte[] out = transducer.output();
                if (view == null || view.array() != out) {
                    view = ByteBuffer.wrap(out);
                }
                view.limit(owed).position(0);
                pending = view;
                if (!send()) {
                    return;
                }
            }
            if (inputDone) {
                close(false);
            }
        }

        /** Write what is pending; true when all of it went, false when it waits for OP_WRITE (or the end). */
        private boolean send() {
            int written;
            try {
                written = channel.write(pending);
            } catch (IOException e) {
                close(true); // S-5: a broken pipe or reset ends this connection only
                return false;
            }
            if (written > 0) {
                sent += written;
                lastProgress = now;
            }
            if (pending.hasRemaining()) {
                key.interestOps(SelectionKey.OP_WRITE); // D-5: no reading while the answer waits
                return false;
            }
            pending = null;
            return true;
        }

        /** OP_WRITE: more of the waiting answer; once it is all sent, read again (or close after EOF). */
        void writable() {
            if (pending != null && !send()) {
                return;
            }
            if (inputDone) {
                close(false);
            } else {
                key.interestOps(SelectionKey.OP_READ);
            }
        }

        /** S-2: no progress for the idle timeout. */
        void idle() {
            if (pending != null) {
                close(true); // the peer stopped taking the answer: it must not hold a slot for good
                return;
            }
            // Idle in read: answer the held-back tail (E-2), then close in order.
            inputDone = true;
            answer(transducer.flush());
            if (open) { // the tail (at most 3 bytes) did not fit into an empty send buffer: give up
                close(true);
            }
        }

        /** Close (reset when asked: S-2, S-4, S-5), after freeing the slot (S-3); log the close line (S-6). */
        void close(boolean abort) {
            if (!open) {
                return;
            }
            open = false;
            remove(this);
            if (abort) {
                reset(channel);
            } else {
                closeQuietly(channel); // registered: the JDK shuts the output down now, the descriptor goes at select
            }
            logClose();
        }

        /** The one close line (S-6). */
        void logClose() {
            Cli.log("close peer=" + peer + " in=" + received + " out=" + sent);
        }
    }
}
