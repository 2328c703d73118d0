package upperecho;

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** `upper-echo server|client|transform ...`, the command line of spec/PROTOCOL.md sections 5-7. */
public final class Main {
    static final int EXIT_USAGE = 2;
    static final int EXIT_CANNOT_LISTEN = 1; // S-9

    private static final String USAGE = "usage: upper-echo [-h] {server,client,transform} ...\n";
    private static final String HELP = USAGE
            + "\nUppercase echo over TCP: the Java reference implementation of spec/PROTOCOL.md.\n"
            + "\npositional arguments:\n"
            + "  {server,client,transform}\n"
            + "    server              serve the uppercase echo protocol\n"
            + "    client              send MESSAGEs or stdin, print the reply\n"
            + "    transform           apply U to stdin without sockets\n"
            + "\noptions:\n"
            + "  -h, --help            show this help message and exit\n";
    private static final String SERVER_HELP =
            "usage: upper-echo server [-h] [--host HOST] [--port PORT] [--idle-timeout S]\n"
            + "                         [--max-connections N] [--drain-timeout S]\n"
            + "\nServe U over TCP. Prints 'listening on ADDR:PORT' when ready.\n"
            + "\noptions:\n"
            + "  -h, --help           show this help message and exit\n"
            + "  --host HOST          address or name to listen on (default: 127.0.0.1)\n"
            + "  --port PORT          port; 0 takes a free one (default: 7007)\n"
            + "  --idle-timeout S     close a connection that received nothing for S seconds;\n"
            + "                       0 = never (default: 300)\n"
            + "  --max-connections N  accept and close at once beyond N open connections\n"
            + "                       (default: 1024)\n"
            + "  --drain-timeout S    on SIGTERM/SIGINT, let connections finish for S seconds\n"
            + "                       (default: 5)\n";
    private static final String CLIENT_HELP =
            "usage: upper-echo client [-h] [--host HOST] [--port PORT] [--timeout S]\n"
            + "                         [MESSAGE ...]\n"
            + "\nSend each MESSAGE plus LF (or stdin when none), half-close, and copy the\n"
            + "server's bytes to stdout. Exit 0 ok, 3 cannot connect, 4 connection broke.\n"
            + "\npositional arguments:\n"
            + "  MESSAGE      lines to send; stdin is used when none\n"
            + "\noptions:\n"
            + "  -h, --help   show this help message and exit\n"
            + "  --host HOST  server address or name (default: 127.0.0.1)\n"
            + "  --port PORT  server port (default: 7007)\n"
            + "  --timeout S  bound on connecting and on each wait after half-close (default:\n"
            + "               10)\n";
    private static final String TRANSFORM_HELP =
            "usage: upper-echo transform [-h] [--chunk-size N]\n"
            + "\nWrite U(stdin) to stdout, feeding the transducer in reads of at most\n"
            + "--chunk-size bytes.\n"
            + "\noptions:\n"
            + "  -h, --help      show this help message and exit\n"
            + "  --chunk-size N  largest read fed to the transducer (default: 65536)\n";

    private Main() {
    }

    public static void main(String[] argv) {
        int status;
        try {
            status = run(argv);
        } catch (Args.UsageError e) {
            Io.error(e.getMessage());
            status = EXIT_USAGE;
        }
        System.exit(status);
    }

    private static int run(String[] argv) throws Args.UsageError {
        if (argv.length == 0) {
            throw new Args.UsageError("the following arguments are required: {server,client,transform}");
        }
        String command = argv[0];
        if (command.equals("-h") || command.equals("--help")) {
            return help(HELP);
        }
        if (command.startsWith("-") && command.length() > 1) {
            throw new Args.UsageError("unrecognized arguments: " + command);
        }
        try {
            switch (command) {
                case "server":
                    return server(Args.parse(argv, 1,
                            List.of("--host", "--port", "--idle-timeout", "--max-connections", "--drain-timeout"),
                            false));
                case "client":
                    return client(argv, Args.parse(argv, 1, List.of("--host", "--port", "--timeout"), true));
                case "transform":
                    return transform(Args.parse(argv, 1, List.of("--chunk-size"), false));
                default:
                    throw new Args.UsageError("argument command: invalid choice: '" + command
                            + "' (choose from 'server', 'client', 'transform')");
            }
        } catch (Args.HelpRequested help) {
            switch (command) {
                case "server":
                    return help(SERVER_HELP);
                case "client":
                    return help(CLIENT_HELP);
                default:
                    return help(TRANSFORM_HELP);
            }
        }
    }

    private static int help(String text) {
        try {
            Io.STDOUT.write(text.getBytes(StandardCharsets.UTF_8));
        } catch (IOException ignored) {
            // nothing to do about a closed stdout
        }
        return 0;
    }

    private static int server(Args args) throws Args.UsageError {
        String host = args.string("--host", "127.0.0.1");
        int port = (int) args.integer("--port", 7007, 0, 65535);
        long idle = args.seconds("--idle-timeout", 300, false);
        long max = args.integer("--max-connections", 1024, 1, -1);
        long drain = args.seconds("--drain-timeout", 5, false);
        try {
            return new Server(host, port, idle, max, drain).run();
        } catch (Server.CannotListen e) {
            Io.error(e.getMessage());
            return EXIT_CANNOT_LISTEN;
        }
    }

    private static int client(String[] argv, Args args) throws Args.UsageError {
        String host = args.string("--host", "127.0.0.1");
        int port = (int) args.integer("--port", 7007, 1, 65535);
        long timeout = args.seconds("--timeout", 10, true);
        byte[] messages = null;
        if (!args.positionals.isEmpty()) {
            byte[][] raw = rawArguments(argv);
            ByteArrayOutputStream joined = new ByteArrayOutputStream();
            for (int i = 0; i < args.positionals.size(); i++) {
                int index = args.positionalIndexes.get(i);
                byte[] bytes = raw != null ? raw[index] : args.positionals.get(i).getBytes(StandardCharsets.UTF_8);
                joined.writeBytes(bytes);
                joined.write('\n');
            }
            messages = joined.toByteArray();
        }
        return new Client(host, port, timeout, messages).run();
    }

    /**
     * The exact bytes of argv, so a MESSAGE is sent as given (C-2), like the
     * Python reference's os.fsencode.
     *
     * The JVM decodes argv with the platform charset (sun.jnu.encoding). Under
     * a UTF-8 locale (C.UTF-8, tr_TR.UTF-8, ...) that is lossless, but under
     * LANG=C it is ASCII and non-ASCII bytes are lost. On Linux the raw bytes
     * are in /proc/self/cmdline: our arguments are its last argv.length
     * entries. They are used only when they agree with what the JVM decoded
     * (same count; identical wherever the argument is ASCII). Elsewhere (no
     * /proc) the decoded strings are re-encoded as UTF-8, which is exact
     * under a UTF-8 locale and the stated limitation otherwise.
     */
    private static byte[][] rawArguments(String[] argv) {
        byte[] cmdline;
        try {
            cmdline = Files.readAllBytes(Paths.get("/proc/self/cmdline"));
        } catch (IOException | RuntimeException e) {
            return null;
        }
        List<byte[]> entries = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < cmdline.length; i++) {
            if (cmdline[i] == 0) {
                entries.add(Arrays.copyOfRange(cmdline, start, i));
                start = i + 1;
            }
        }
        if (start < cmdline.length) {
            entries.add(Arrays.copyOfRange(cmdline, start, cmdline.length));
        }
        if (entries.size() < argv.length) {
            return null;
        }
        byte[][] raw = entries.subList(entries.size() - argv.length, entries.size()).toArray(new byte[0][]);
        Charset jnu = platformCharset();
        for (int i = 0; i < argv.length; i++) {
            boolean ascii = true;
            for (byte b : raw[i]) {
                ascii &= b >= 0;
            }
            if (ascii ? !new String(raw[i], StandardCharsets.US_ASCII).equals(argv[i])
                    : jnu != null && jnu.equals(StandardCharsets.UTF_8) && isValidUtf8(raw[i])
                            && !new String(raw[i], StandardCharsets.UTF_8).equals(argv[i])) {
                return null;
            }
        }
        return raw;
    }

    private static boolean isValidUtf8(byte[] bytes) {
        try {
            StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes));
            return true;
        } catch (java.nio.charset.CharacterCodingException e) {
            return false;
        }
    }

    private static Charset platformCharset() {
        try {
            String name = System.getProperty("sun.jnu.encoding");
            return name == null ? null : Charset.forName(name);
        } catch (RuntimeException e) {
            return null;
        }
    }

    private static int transform(Args args) throws Args.UsageError {
        int chunk = (int) Math.min(args.integer("--chunk-size", 65536, 1, -1), 1 << 24);
        Transducer transducer = new Transducer();
        InputStream in = new FileInputStream(FileDescriptor.in);
        byte[] buffer = new byte[chunk];
        try {
            int n;
            while ((n = in.read(buffer, 0, chunk)) >= 0) {
                if (n > 0) {
                    int owed = transducer.feed(buffer, 0, n); // first: feed may replace output()
                    Io.STDOUT.write(transducer.output(), 0, owed);
                }
            }
            int owed = transducer.flush();
            Io.STDOUT.write(transducer.output(), 0, owed);
        } catch (IOException e) {
            Io.error("transform: " + e.getMessage());
            return 1;
        }
        return 0;
    }

    /** Seconds for messages, without locale-dependent formatting. */
    static String formatSeconds(long ms) {
        if (ms % 1000 == 0) {
            return Long.toString(ms / 1000);
        }
        return new java.math.BigDecimal(ms).movePointLeft(3).stripTrailingZeros().toPlainString();
    }
}
