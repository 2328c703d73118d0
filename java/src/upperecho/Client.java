package upperecho;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;

/**
 * The client (spec/PROTOCOL.md section 6): a sender thread copies the
 * MESSAGEs or stdin to the socket while the main thread copies the socket
 * to stdout, so neither can block the other (C-3).
 *
 * Timeout after half-close (C-5): in Java, changing SO_TIMEOUT does not
 * affect a read that is already blocked, so the receiver always reads with
 * SO_TIMEOUT = --timeout and treats a timeout as "keep waiting" while the
 * sender is still sending. Once the sender has half-closed, a timeout ends
 * the client only when nothing arrived for --timeout since the later of the
 * half-close and the last data; otherwise it waits out the remainder. A
 * timed-out read leaves the socket usable.
 */
final class Client {
    static final int EXIT_OK = 0;
    static final int EXIT_CANNOT_CONNECT = 3; // C-6
    static final int EXIT_CONNECTION_BROKE = 4;
    static final int EXIT_STDOUT_FAILED = 1;
    private static final int CHUNK = 64 * 1024;

    private final String host;
    private final int port;
    private final int timeoutMs;
    private final byte[] messages; // null: copy stdin

    private volatile boolean halfClosed;
    private volatile long halfClosedAt;

    Client(String host, int port, long timeoutMs, byte[] messages) {
        this.host = host;
        this.port = port;
        this.timeoutMs = (int) Math.min(timeoutMs, Integer.MAX_VALUE);
        this.messages = messages;
    }

    int run() {
        Socket socket = connect();
        if (socket == null) {
            return EXIT_CANNOT_CONNECT;
        }
        Thread sender = new Thread(() -> send(socket), "sender");
        // daemon: a sender blocked reading a terminal must not keep the client alive after the server closed (C-7)
        sender.setDaemon(true);
        sender.start();
        return receive(socket);
    }

    /** Try each address the host resolves to, each bounded by --timeout (C-5); null after a C-6 error. */
    private Socket connect() {
        InetAddress[] addresses;
        try {
            addresses = InetAddress.getAllByName(host);
        } catch (UnknownHostException e) {
            Io.error("cannot connect to " + host + ":" + port + ": unknown host");
            return null;
        }
        String reason = "no address";
        for (InetAddress address : addresses) {
            Socket socket = new Socket();
            try {
                socket.connect(new InetSocketAddress(address, port), timeoutMs);
                socket.setTcpNoDelay(true);
                return socket;
            } catch (SocketTimeoutException e) {
                reason = "timed out";
            } catch (IOException e) {
                reason = e.getMessage();
            }
            try {
                socket.close();
            } catch (IOException ignored) {
                // it never opened
            }
        }
        Io.error("cannot connect to " + host + ":" + port + ": " + reason);
        return null;
    }

    private void send(Socket socket) {
        try {
            OutputStream out = socket.getOutputStream();
            if (messages != null) {
                out.write(messages);
            } else {
                InputStream in = new FileInputStream(FileDescriptor.in);
                byte[] buffer = new byte[CHUNK];
                int n;
                while ((n = in.read(buffer)) >= 0) {
                    if (n > 0) {
                        out.write(buffer, 0, n);
                    }
                }
            }
        } catch (IOException e) {
            // C-7: the server closed or reset; the receiver decides the outcome
        } finally {
            try {
                socket.shutdownOutput();
            } catch (IOException ignored) {
                // the connection is already gone; the receiver will see it
            }
            halfClosedAt = System.nanoTime();
            halfClosed = true;
        }
    }

    /** Copy the socket to stdout until the server closes; return the exit status. */
    private int receive(Socket socket) {
        byte[] buffer = new byte[CHUNK];
        long lastData = System.nanoTime();
        try {
            socket.setSoTimeout(timeoutMs);
            InputStream in = socket.getInputStream();
            while (true) {
                int n;
                try {
                    n = in.read(buffer);
                } catch (SocketTimeoutException e) {
                    if (!halfClosed) {
                        continue; // C-5: no timeout while still sending
                    }
                    long since = Math.max(lastData, halfClosedAt);
                    long waitedMs = (System.nanoTime() - since) / 1_000_000L;
                    if (waitedMs >= timeoutMs) {
                        Io.error("no data from the server for " + Main.formatSeconds(timeoutMs)
                                + " s after sending everything");
                        return EXIT_CONNECTION_BROKE;
                    }
                    socket.setSoTimeout((int) (timeoutMs - waitedMs));
                    continue;
                }
                if (n < 0) {
                    return EXIT_OK;
                }
                lastData = System.nanoTime();
                socket.setSoTimeout(timeoutMs);
                try {
                    Io.STDOUT.write(buffer, 0, n); // C-4: the server's bytes, unchanged, unbuffered
                } catch (IOException e) {
                    Io.error("cannot write to stdout: " + e.getMessage());
                    return EXIT_STDOUT_FAILED;
                }
            }
        } catch (IOException e) {
            Io.error("connection broke: " + e.getMessage());
            return EXIT_CONNECTION_BROKE;
        }
    }
}
