// The client (spec/PROTOCOL.md section 6): one thread owns the socket, so no reset goes unseen (C-7).
package upperecho;

import java.io.IOException;
import java.math.BigDecimal;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.channels.Pipe;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.channels.UnsupportedAddressTypeException;

/**
 * The client: sends the MESSAGEs or stdin while it copies the socket to
 * stdout, so neither direction can block the other (C-3).
 *
 * One thread does every socket operation, non-blocking, from one selector
 * loop. That is what makes C-7 exact: when the server resets, the kernel
 * reports the reset once, to whichever send or read comes first, and a later
 * read sees a plain end of stream. With a separate sending thread the reset
 * could be taken by the sender while the reader went on to a clean EOF; here
 * the first failing send or read ends the client with 4 at once, so an end of
 * stream it reads is the server's FIN with no reset reported before it.
 *
 * stdin is not selectable in Java, so a daemon thread copies it into a pipe
 * whose other end is in the selector; the pipe's buffer bounds what is read
 * ahead. A daemon, because a read of a terminal must not keep the client
 * alive once the server has closed (C-7).
 *
 * Timeout (C-5): while sending, the loop waits without a bound; once it has
 * half-closed, each wait for the server is bounded by --timeout.
 */
final class Client {
    /** `upper-echo client` (C-1), the timeout in milliseconds. */
    record Options(String host, int port, int timeoutMs) {
    }

    static final int EXIT_CANNOT_CONNECT = 3; // C-6
    static final int EXIT_CONNECTION_BROKE = 4;
    private static final int CHUNK = 64 * 1024;

    private final Options options;
    private final SocketChannel channel;

    private Client(Options options, SocketChannel channel) {
        this.options = options;
        this.channel = channel;
    }

    /** Connect, exchange, return the exit status (C-6). messages: what to send, or null to send stdin. */
    static int run(Options options, byte[] messages) {
        SocketChannel channel = null;
        try (Selector selector = Selector.open()) {
            channel = connect(options, selector);
            if (channel == null) {
                return EXIT_CANNOT_CONNECT;
            }
            return new Client(options, channel).exchange(selector, messages);
        } catch (IOException e) {
            Cli.error("connection broke: " + e.getMessage());
            return EXIT_CONNECTION_BROKE;
        } finally {
            closeQuietly(channel);
        }
    }

    /**
     * Connect to the first address the host resolves to, bounded by --timeout (C-5); null after a C-6
     * error. A reset of a connection the server accepted is thrown (exit 4), however soon it came.
     * A non-blocking connect on the selector: the channel's blocking socket adaptor would load and
     * initialise java.net.Socket and its properties file at every start.
     */
    private static SocketChannel connect(Options options, Selector selector) throws IOException {
        String where = (options.host().indexOf(':') >= 0 ? "[" + options.host() + "]" : options.host()) + ":"
                + options.port();
        InetAddress address;
        try {
            address = InetAddress.getAllByName(options.host())[0];
        } catch (UnknownHostException e) {
            Cli.error("cannot connect to " + where + ": unknown host");
            return null;
        }
        if (address.isAnyLocalAddress()) { // Linux would connect to this host instead; other systems refuse
            Cli.error("cannot connect to " + where + ": " + (address instanceof Inet6Address ? "::" : "0.0.0.0")
                    + " is an unspecified address, which names no peer");
            return null;
        }
        String reason;
        SocketChannel channel = null;
        try {
            channel = SocketChannel.open();
            channel.configureBlocking(false);
            if (!channel.connect(new InetSocketAddress(address, options.port()))) {
                channel.register(selector, SelectionKey.OP_CONNECT);
                long deadline = System.nanoTime() + options.timeoutMs() * 1_000_000L;
                while (!channel.finishConnect()) {
                    long waitMs = (deadline - System.nanoTime() + 999_999L) / 1_000_000L;
                    if (waitMs <= 0) {
                        throw new SocketTimeoutException();
                    }
                    selector.select(waitMs);
                    selector.selectedKeys().clear();
                }
            }
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            return channel;
        } catch (SocketTimeoutException e) {
            reason = "timed out";
        } catch (IOException e) {
            if (isReset(e)) { // C-6: accepted, then reset (an S-3 rejection): not a refusal
                closeQuietly(channel);
                throw e;
            }
            reason = e.getMessage();
        } catch (UnsupportedAddressTypeException e) { // an IPv6 address without IPv6: the adaptor's wording
            reason = "Unsupported address type";
        }
        closeQuietly(channel);
        Cli.error("cannot connect to " + where + ": " + reason);
        return null;
    }

    /**
     * Whether a connect failed with ECONNRESET: the server accepted the connection, then reset it, before
     * finishConnect saw it complete. The JDK throws a plain SocketException for it, as for a network that
     * cannot be reached, worded by strerror: only the words tell them apart. bin/upper-echo sets LANGUAGE=C
     * so that strerror speaks English whatever the locale.
     */
    private static boolean isReset(IOException e) {
        return e instanceof SocketException && String.valueOf(e.getMessage()).startsWith("Connection reset");
    }

    /**
     * The selector loop. Each round reads the socket first (an end of stream
     * there is the orderly close: exit 0, C-7), then sends what is pending,
     * then takes more input. Any socket error ends it at once (IOException:
     * exit 4). Returns the exit status otherwise.
     */
    private int exchange(Selector selector, byte[] messages) throws IOException {
        StdinCopier copier = null;
        Pipe.SourceChannel stdin = null;
        try {
            SelectionKey socketKey = channel.register(selector, SelectionKey.OP_READ);
            ByteBuffer outgoing;
            SelectionKey stdinKey = null;
            boolean inputDone;
            if (messages != null) {
                outgoing = ByteBuffer.wrap(messages);
                inputDone = true;
            } else {
                copier = StdinCopier.launch();
                stdin = copier.source;
                stdin.configureBlocking(false);
                stdinKey = stdin.register(selector, SelectionKey.OP_READ);
                outgoing = ByteBuffer.allocate(CHUNK).flip();
                inputDone = false;
            }
            byte[] received = new byte[CHUNK];
            ByteBuffer incoming = ByteBuffer.wrap(received);
            boolean halfClosed = false;
            long quietSince = 0; // after the half-close: when the server last sent something (C-5)
            while (true) {
                if (!halfClosed && inputDone && !outgoing.hasRemaining()) {
                    channel.shutdownOutput(); // C-2, C-3: half-close
                    halfClosed = true;
                    quietSince = System.nanoTime();
                }
                socketKey.interestOps(SelectionKey.OP_READ | (outgoing.hasRemaining() ? SelectionKey.OP_WRITE : 0));
                if (stdinKey != null) {
                    stdinKey.interestOps(!inputDone && !outgoing.hasRemaining() ? SelectionKey.OP_READ : 0);
                }
                long waitMs = 0; // no bound while sending (C-5)
                if (halfClosed) {
                    waitMs = options.timeoutMs() - (System.nanoTime() - quietSince) / 1_000_000L;
                    if (waitMs <= 0) {
                        Cli.error("no data from the server for " + seconds(options.timeoutMs())
                                + " s after sending everything");
                        return EXIT_CONNECTION_BROKE;
                    }
                }
                selector.select(waitMs);
                selector.selectedKeys().clear();

                incoming.clear();
                int n = channel.read(incoming);
                if (n < 0) {
                    return Cli.EXIT_OK; // the server's FIN, and no reset reported before it (C-7)
                }
                if (n > 0) {
                    quietSince = System.nanoTime();
                    if (!Cli.writeStdout(received, n)) { // C-4: the server's bytes, unchanged, unbuffered
                        return Cli.EXIT_FAILURE;
                    }
                }
                if (outgoing.hasRemaining()) {
                    channel.write(outgoing);
                }
                if (stdin != null && !inputDone && !outgoing.hasRemaining()) {
                    outgoing.clear();
                    inputDone = stdin.read(outgoing) < 0;
                    outgoing.flip();
                    if (inputDone && copier.failure != null) {
                        // C-8: not the end of input. Reset rather than half-close, so the server cannot
                        // take what it got for the whole input.
                        channel.setOption(StandardSocketOptions.SO_LINGER, 0);
                        Cli.error("cannot read stdin: " + copier.failure);
                        return Cli.EXIT_FAILURE;
                    }
                }
            }
        } finally {
            // The copier, blocked writing to a full pipe, now fails and ends. A thread still blocked in a
            // system call holds the JVM's exit back by 300 ms (HotSpot waits for threads in native code).
            closeQuietly(stdin);
        }
    }

    /**
     * A daemon thread that copies stdin into a pipe, whose readable end is `source`; stdin's end or a failed
     * read closes the pipe, and a failed read is in `failure` before it does. A class rather than a lambda,
     * whose bootstrap costs a client start.
     */
    private static final class StdinCopier extends Thread {
        final Pipe.SourceChannel source;
        private final Pipe.SinkChannel sink;
        volatile String failure; // why stdin could not be read (C-8), or null

        private StdinCopier(Pipe pipe) {
            super("stdin");
            this.source = pipe.source();
            this.sink = pipe.sink();
        }

        static StdinCopier launch() throws IOException {
            StdinCopier copier = new StdinCopier(Pipe.open());
            copier.setDaemon(true);
            copier.start();
            return copier;
        }

        @Override
        public void run() {
            try (sink) {
                byte[] buffer = new byte[CHUNK];
                while (true) {
                    int n;
                    try {
                        n = Stdio.read(buffer, 0, CHUNK);
                    } catch (IOException e) {
                        // set before the pipe closes: the client reads it at the pipe's end
                        failure = e.getMessage() != null ? e.getMessage() : e.toString();
                        return;
                    }
                    if (n < 0) {
                        return;
                    }
                    ByteBuffer chunk = ByteBuffer.wrap(buffer, 0, n);
                    while (chunk.hasRemaining()) {
                        sink.write(chunk);
                    }
                }
            } catch (IOException e) {
                // the client is done and closed the pipe
            }
        }
    }

    /** Seconds for messages, without locale-dependent formatting. */
    private static String seconds(int ms) {
        return BigDecimal.valueOf(ms).movePointLeft(3).stripTrailingZeros().toPlainString();
    }

    private static void closeQuietly(AutoCloseable closeable) {
        if (closeable == null) {
            return;
        }
        try {
            closeable.close();
        } catch (Exception ignored) {
            // closing is best effort
        }
    }
}
