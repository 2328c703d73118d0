// Build step, not part of the program: bin/cds-archive runs this class once to make the class-data-sharing archive.
package upperecho;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;

/**
 * Build-time training run for the application class-data-sharing archive
 * (bin/cds-archive runs it with -XX:ArchiveClassesAtExit). It loads the classes a
 * client, the server (its channels and selector) and the transform use, over
 * loopback only, so that starting the JVM later maps them instead of parsing
 * them: the matrix starts hundreds of client and server processes. Not part
 * of the command line. bin/cds-archive gives it a line on stdin: the second
 * client sends stdin, as most matrix clients do.
 */
final class Train {
    private Train() {
    }

    public static void main(String[] argv) throws Exception {
        try (ServerSocket listener = new ServerSocket()) {
            listener.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            Thread echo = new Thread(() -> {
                for (int client = 0; client < 2; client++) {
                    echo(listener);
                }
            });
            echo.start();
            Server.format(listener.getLocalSocketAddress());
            Server.warmUp(); // the server's non-blocking channels and selector
            // the whole client path, the option parser included; bin/cds-archive sends its stdout to /dev/null
            String host = InetAddress.getLoopbackAddress().getHostAddress();
            Cli.run(new String[] {"client", "--host", host, "--port=" + listener.getLocalPort(), "--timeout", "10.5",
                    "training \u00df"});
            String port = String.valueOf(listener.getLocalPort());
            Cli.run(new String[] {"client", "--host", host, "--port", port}); // sends stdin
            echo.join(10_000);
        }
    }

    /** Serve one connection: U of what it sends, until it half-closes. */
    private static void echo(ServerSocket listener) {
        try (Socket socket = listener.accept()) {
            socket.setSoTimeout(10_000);
            InputStream in = socket.getInputStream();
            OutputStream out = socket.getOutputStream();
            Transducer transducer = new Transducer();
            byte[] buffer = new byte[4096];
            int n;
            while ((n = in.read(buffer)) >= 0) {
                int owed = transducer.feed(buffer, 0, n);
                out.write(transducer.output(), 0, owed);
            }
            int owed = transducer.flush();
            out.write(transducer.output(), 0, owed);
        } catch (Exception ignored) {
            // training only
        }
    }
}
