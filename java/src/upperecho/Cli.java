// The command line (spec/PROTOCOL.md sections 5-7, spec/cli.toml): argv, options, help, exit codes.
package upperecho;

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * `upper-echo server|client|transform ...`: the language of spec/cli.toml
 * decoded into one immutable options record per subcommand.
 *
 * System.out and System.err are never used: they encode with the platform
 * charset and swallow write errors (checkError), while stdout must carry raw
 * bytes (C-4) and a failed write must exit 1. Every byte goes through
 * the raw file descriptors instead: stdout's and stdin's in Stdio,
 * stderr's below.
 */
public final class Cli {
    static final int EXIT_OK = 0;
    static final int EXIT_FAILURE = 1; // S-9 cannot listen; X-6 cannot write to stdout; C-8 cannot read stdin
    static final int EXIT_USAGE = 2;

    private static final FileOutputStream STDERR = new FileOutputStream(FileDescriptor.err);

    /**
     * The grammar of values, spec/cli.toml [types]: its patterns,
     * matched in full by hand, since compiling regexes costs the interpreted
     * client start (-Xint) several milliseconds.
     */
    private enum Type {
        INTEGER, // [0-9]+
        SECONDS, // [0-9]+(\.[0-9]{1,3})?
        HOST; // [!-$&-Z\\^-~]+|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]

        boolean matches(String text) {
            int whole = digits(text, 0);
            switch (this) {
                case INTEGER:
                    return whole > 0 && whole == text.length();
                case SECONDS:
                    int decimals = text.length() - whole - 1; // after the '.'
                    return whole > 0 && (decimals == -1 || text.charAt(whole) == '.' && decimals >= 1
                            && decimals <= 3 && digits(text, whole + 1) == decimals);
                default:
                    if (text.indexOf('[') < 0 && text.indexOf(']') < 0) {
                        return !text.isEmpty() && printableAscii(text) && text.indexOf('%') < 0;
                    }
                    int last = text.length() - 1;
                    if (last < 1 || text.charAt(0) != '[' || text.charAt(last) != ']' || text.indexOf(':') < 0) {
                        return false;
                    }
                    for (int i = 1; i < last; i++) {
                        char c = text.charAt(i);
                        if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.'
                                || c == ':')) {
                            return false;
                        }
                    }
                    return true;
            }
        }

        /** Printable ASCII with no space: nothing a resolver could map to ASCII (IDNA), as some do. */
        private static boolean printableAscii(String text) {
            for (int i = 0; i < text.length(); i++) {
                if (text.charAt(i) < '!' || text.charAt(i) > '~') {
                    return false;
                }
            }
            return true;
        }

        /** How many ASCII digits text has from start on. */
        private static int digits(String text, int start) {
            int i = start;
            while (i < text.length() && text.charAt(i) >= '0' && text.charAt(i) <= '9') {
                i++;
            }
            return i - start;
        }
    }

    /** One flag of spec/cli.toml, its bounds and default written as there. Numbers are kept as long; seconds in ms. */
    private record Option(String flag, Type type, String min, String max, String fallback) {
    }

    /** One subcommand of spec/cli.toml: whether it takes operands (then `--` ends its flags), and its flags. */
    private record Command(String name, boolean operands, List<Option> options, String help) {
        Option option(String flag) {
            for (Option option : options) {
                if (option.flag.equals(flag)) {
                    return option;
                }
            }
            return null;
        }
    }

    /** `upper-echo transform`. */
    record TransformOptions(int chunkSize) {
    }

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

    /** spec/cli.toml [commands.*], flag by flag. */
    private static final Command SERVER = new Command("server", false, List.of(
            new Option("--host", Type.HOST, null, null, "127.0.0.1"),
            new Option("--port", Type.INTEGER, "0", "65535", "7007"),
            new Option("--idle-timeout", Type.SECONDS, "0", "1000000", "300"),
            new Option("--max-connections", Type.INTEGER, "1", "1000000", "1024"),
            new Option("--drain-timeout", Type.SECONDS, "0", "1000000", "5")),
            "usage: upper-echo server [-h] [--host HOST] [--port PORT] [--idle-timeout S]\n"
            + "                         [--max-connections N] [--drain-timeout S]\n"
            + "\nServe U over TCP. Prints 'listening on ADDR:PORT' when ready.\n"
            + "\noptions:\n"
            + "  -h, --help           show this help message and exit\n"
            + "  --host HOST          address or name to listen on (default: 127.0.0.1)\n"
            + "  --port PORT          port 0-65535; 0 takes a free one (default: 7007)\n"
            + "  --idle-timeout S     close a connection that received nothing for S seconds;\n"
            + "                       0 = never (default: 300)\n"
            + "  --max-connections N  accept and close at once beyond N open connections\n"
            + "                       (default: 1024)\n"
            + "  --drain-timeout S    on SIGTERM/SIGINT/SIGHUP, let connections finish for S\n"
            + "                       seconds (default: 5)\n"
            + "\nSeconds are 0-1000000, to the millisecond (0.5, 1.25).\n");
    private static final Command CLIENT = new Command("client", true, List.of(
            new Option("--host", Type.HOST, null, null, "127.0.0.1"),
            new Option("--port", Type.INTEGER, "1", "65535", "7007"),
            new Option("--timeout", Type.SECONDS, "0.001", "1000000", "10")),
            "usage: upper-echo client [-h] [--host HOST] [--port PORT] [--timeout S]\n"
            + "                         [--] [MESSAGE ...]\n"
            + "\nSend each MESSAGE plus LF (or stdin when none), half-close, and copy the\n"
            + "server's bytes to stdout. Exit 0 ok, 1 cannot write to stdout or read\n"
            + "stdin, 3 cannot connect, 4 connection broke.\n"
            + "\npositional arguments:\n"
            + "  MESSAGE      lines to send; stdin is used when none; after --, even one\n"
            + "               that starts with -\n"
            + "\noptions:\n"
            + "  -h, --help   show this help message and exit\n"
            + "  --host HOST  server address or name (default: 127.0.0.1)\n"
            + "  --port PORT  server port (default: 7007)\n"
            + "  --timeout S  bound on connecting and on each wait after half-close, 0.001-\n"
            + "               1000000 (default: 10)\n");
    private static final Command TRANSFORM = new Command("transform", false, List.of(
            new Option("--chunk-size", Type.INTEGER, "1", "16777216", "65536")),
            "usage: upper-echo transform [-h] [--chunk-size N]\n"
            + "\nWrite U(stdin) to stdout, feeding the transducer in reads of at most\n"
            + "--chunk-size bytes.\n"
            + "\noptions:\n"
            + "  -h, --help      show this help message and exit\n"
            + "  --chunk-size N  largest read fed to the transducer, 1-16777216\n"
            + "                  (default: 65536)\n");
    private static final List<Command> COMMANDS = List.of(SERVER, CLIENT, TRANSFORM);

    /** A usage error: exit 2 with one `error: ` line. */
    static final class UsageError extends Exception {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message);
        }
    }

    /** -h/--help was given: print usage to stdout, exit 0. */
    private static final class HelpRequested extends Exception {
        private static final long serialVersionUID = 1L;

        HelpRequested() {
            super(null, null, false, false);
        }
    }

    /** What one command line says: every flag's value (given or default), and where the operands are in argv. */
    private static final class Parsed {
        final Map<String, Object> values = new HashMap<>();
        final List<Integer> operands = new ArrayList<>();

        int number(String flag) {
            return (int) (long) (Long) values.get(flag); // every range in the table fits an int
        }

        String host() {
            return (String) values.get("--host");
        }
    }

    private Cli() {
    }

    public static void main(String[] argv) {
        System.exit(run(argv));
    }

    static int run(String[] argv) {
        Command command = null;
        try {
            if (argv.length == 0) {
                throw new UsageError("the following arguments are required: {server,client,transform}");
            }
            if (argv[0].equals("-h") || argv[0].equals("--help")) {
                return help(HELP);
            }
            for (Command c : COMMANDS) {
                if (c.name.equals(argv[0])) {
                    command = c;
                }
            }
            if (command == null) {
                throw new UsageError(argv[0].startsWith("-") && argv[0].length() > 1
                        ? "unrecognized arguments: " + argv[0]
                        : "argument command: invalid choice: '" + argv[0]
                                + "' (choose from 'server', 'client', 'transform')");
            }
            Parsed parsed = parse(command, argv);
            if (command == SERVER) {
                return Server.run(new Server.Options(parsed.host(), parsed.number("--port"),
                        parsed.number("--idle-timeout"), parsed.number("--max-connections"),
                        parsed.number("--drain-timeout")));
            }
            if (command == CLIENT) {
                return Client.run(new Client.Options(parsed.host(), parsed.number("--port"),
                        parsed.number("--timeout")), messages(argv, parsed.operands));
            }
            return transform(new TransformOptions(parsed.number("--chunk-size")));
        } catch (HelpRequested h) {
            return help(command.help);
        } catch (UsageError e) {
            error(e.getMessage());
            return EXIT_USAGE;
        }
    }

    /**
     * argv[1..] against the command's flags: `--flag VALUE` or
     * `--flag=VALUE`, no abbreviations, the last of a repeated flag counts,
     * `--` only where operands may follow. A malformed value is reported at
     * once; an unknown flag or operand after the whole line was read, so that
     * a later -h/--help still shows help.
     */
    private static Parsed parse(Command command, String[] argv) throws UsageError, HelpRequested {
        Parsed parsed = new Parsed();
        String unexpected = null;
        boolean flagsEnded = false;
        for (int i = 1; i < argv.length; i++) {
            String arg = argv[i];
            if (flagsEnded || !isFlag(arg)) {
                if (command.operands) {
                    parsed.operands.add(i);
                } else if (unexpected == null) {
                    unexpected = arg;
                }
                continue;
            }
            if (arg.equals("-h") || arg.equals("--help")) {
                throw new HelpRequested();
            }
            if (arg.equals("--")) {
                if (!command.operands) {
                    throw new UsageError("'--' is not allowed: " + command.name + " takes no operands");
                }
                flagsEnded = true;
                continue;
            }
            int eq = arg.indexOf('=');
            Option option = command.option(arg.startsWith("--") && eq > 0 ? arg.substring(0, eq) : arg);
            if (option == null) {
                if (unexpected == null) {
                    unexpected = arg;
                }
                continue;
            }
            String value;
            if (arg.startsWith("--") && eq > 0) {
                value = arg.substring(eq + 1);
            } else if (i + 1 < argv.length && !isFlag(argv[i + 1])) {
                value = argv[++i];
            } else {
                throw new UsageError("argument " + option.flag + ": expected one argument");
            }
            parsed.values.put(option.flag, value(option, value));
        }
        if (unexpected != null) {
            throw new UsageError("unrecognized arguments: " + unexpected);
        }
        for (Option option : command.options) {
            if (!parsed.values.containsKey(option.flag)) {
                parsed.values.put(option.flag, value(option, option.fallback));
            }
        }
        return parsed;
    }

    /** Whether argv holds a flag here (rather than a value or an operand): `-x`, `--x`, `--`; not `-`. */
    private static boolean isFlag(String arg) {
        return arg.length() > 1 && arg.charAt(0) == '-';
    }

    /** A flag's value decoded by its type (a Long, in ms for seconds; a String for a host), within its range. */
    private static Object value(Option option, String text) throws UsageError {
        String flag = option.flag;
        if (text.isEmpty()) {
            throw new UsageError("argument " + flag + ": expected a value, got an empty one");
        }
        if (!option.type.matches(text)) {
            switch (option.type) {
                case INTEGER:
                    throw new UsageError("argument " + flag + ": not a whole number in ASCII digits: '" + text + "'");
                case SECONDS:
                    throw new UsageError("argument " + flag + ": not a number of seconds "
                            + "(ASCII digits, at most 3 decimals): '" + text + "'");
                default:
                    if (text.indexOf('%') < 0 && text.indexOf('[') < 0 && text.indexOf(']') < 0) {
                        throw new UsageError("argument " + flag + ": a host is printable ASCII with no space: '"
                                + text + "'");
                    }
                    throw new UsageError("argument " + flag + ": " + (text.indexOf('%') >= 0 ? "a zone index"
                            : "brackets around anything but an IPv6 address") + " is not allowed: '" + text + "'");
            }
        }
        if (option.type == Type.HOST) {
            return host(flag, text);
        }
        long value = number(option.type, text);
        if (value < number(option.type, option.min) || value > number(option.type, option.max)) {
            throw new UsageError("argument " + flag + ": " + text + " is out of range (" + option.min + "-"
                    + option.max + ")");
        }
        return value;
    }

    /** An integer, or seconds as milliseconds, of text that matches the type's pattern; huge ones saturate. */
    private static long number(Type type, String text) {
        long value = 0;
        int i = 0;
        for (; i < text.length() && text.charAt(i) != '.'; i++) {
            value = Math.min(value * 10 + (text.charAt(i) - '0'), Integer.MAX_VALUE); // far above every max
        }
        if (type == Type.INTEGER) {
            return value;
        }
        long millis = 0;
        for (int k = 1; k <= 3; k++) { // the pattern allows at most 3 decimals
            millis = millis * 10 + (i + k < text.length() ? text.charAt(i + k) - '0' : 0);
        }
        return value * 1000 + millis;
    }

    /**
     * a host with a ':' must be an IPv6 address, bracketed or not ([::1] is ::1), never a name to look up; a
     * host that looks like an IPv4 address must be one in dotted decimal. Returned without brackets.
     */
    private static String host(String flag, String text) throws UsageError {
        String inner = text.startsWith("[") ? text.substring(1, text.length() - 1) : text;
        if (inner.indexOf(':') >= 0) { // every bracketed host (the pattern)
            if (!ipv6(inner)) {
                throw new UsageError("argument " + flag + ": '" + text + "' is not an IPv6 address");
            }
            return inner;
        }
        if (ipv4Like(text) && !dottedDecimal(text)) {
            throw new UsageError("argument " + flag + ": '" + text + "' is not an IPv4 address in dotted "
                    + "decimal (four numbers 0-255, no leading zeros)");
        }
        return text;
    }

    /**
     * RFC 4291's text form, exactly what glibc's inet_pton(AF_INET6) takes: eight groups of 1-4 hex digits
     * joined by ':', or fewer with one "::" that stands for at least one zero group; the last two groups may be
     * an IPv4 address, in dotted decimal. Not InetAddress's parser: it takes ::ffff:0177.0.0.1 as 177.0.0.1.
     */
    private static boolean ipv6(String text) {
        boolean elided = text.startsWith("::");
        int groups = 0;
        int i = elided ? 2 : 0;
        while (i < text.length()) {
            int start = i;
            while (i < text.length() && i - start <= 4 && Character.digit(text.charAt(i), 16) >= 0) {
                i++; // up to one digit too many, so that 12345 fails; ASCII only (the pattern)
            }
            if (i < text.length() && text.charAt(i) == '.') { // the IPv4 part: two groups, and the end
                groups += 2;
                return (elided ? groups < 8 : groups == 8) && dottedDecimal(text.substring(start));
            }
            if (i == start || i - start > 4) {
                return false;
            }
            groups++;
            if (i == text.length()) {
                break;
            }
            if (text.charAt(i) != ':' || ++i == text.length()) { // a lone ':' at the end
                return false;
            }
            if (text.charAt(i) == ':') {
                if (elided) {
                    return false;
                }
                elided = true;
                i++;
            }
        }
        return elided ? groups < 8 : groups == 8;
    }

    /**
     * cli.toml [types.host] ipv4_like, of a host with no ':' (host() sees to that): the last part (after one
     * trailing dot) is digits or 0x...
     */
    private static boolean ipv4Like(String text) {
        int end = text.endsWith(".") ? text.length() - 1 : text.length();
        int start = text.lastIndexOf('.', end - 1) + 1;
        if (start >= end) {
            return false;
        }
        if (end - start >= 2 && text.charAt(start) == '0' && (text.charAt(start + 1) | 0x20) == 'x') {
            return true;
        }
        for (int i = start; i < end; i++) {
            if (text.charAt(i) < '0' || text.charAt(i) > '9') {
                return false;
            }
        }
        return true;
    }

    /** cli.toml [types.host] ipv4: four numbers 0-255 joined by dots, no leading zeros. */
    private static boolean dottedDecimal(String text) {
        int parts = 0;
        int i = 0;
        while (true) {
            int start = i;
            while (i < text.length() && text.charAt(i) >= '0' && text.charAt(i) <= '9') {
                i++;
            }
            int length = i - start;
            if (length == 0 || length > 3 || length > 1 && text.charAt(start) == '0'
                    || Integer.parseInt(text, start, i, 10) > 255) {
                return false;
            }
            parts++;
            if (i == text.length()) {
                return parts == 4;
            }
            if (text.charAt(i) != '.' || parts == 4) {
                return false;
            }
            i++;
        }
    }

    /** The MESSAGEs as sent (C-2): each one's exact argv bytes and an LF; null when there are none (stdin). */
    private static byte[] messages(String[] argv, List<Integer> operands) {
        if (operands.isEmpty()) {
            return null;
        }
        byte[][] raw = Quirks.rawArguments(argv);
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        for (int index : operands) {
            joined.writeBytes(raw != null ? raw[index] : argv[index].getBytes(StandardCharsets.UTF_8));
            joined.write('\n');
        }
        return joined.toByteArray();
    }

    /** U(stdin) to stdout, fed to the transducer in reads of at most chunkSize bytes. */
    private static int transform(TransformOptions options) {
        Transducer transducer = new Transducer();
        byte[] buffer = new byte[options.chunkSize()];
        int n;
        while (true) {
            try {
                n = Stdio.read(buffer, 0, buffer.length);
            } catch (IOException e) {
                error("cannot read stdin: " + e.getMessage());
                return EXIT_FAILURE;
            }
            // feed/flush first: they may replace output()
            int owed = n < 0 ? transducer.flush() : transducer.feed(buffer, 0, n);
            if (!writeStdout(transducer.output(), owed)) {
                return EXIT_FAILURE;
            }
            if (n < 0) {
                return EXIT_OK;
            }
        }
    }

    private static int help(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        return writeStdout(bytes, bytes.length) ? EXIT_OK : EXIT_FAILURE;
    }

    /**
     * Write to stdout, unchanged and unbuffered (C-4); on failure report it with one error line and return
     * false: the caller exits 1.
     */
    static boolean writeStdout(byte[] bytes, int length) {
        try {
            Stdio.write(bytes, length);
            return true;
        } catch (IOException e) {
            error("cannot write to stdout: " + e.getMessage());
            return false;
        }
    }

    /** One line on stderr, written with a single write so concurrent lines never interleave. */
    static void log(String line) {
        byte[] bytes = (line + "\n").getBytes(StandardCharsets.UTF_8);
        synchronized (STDERR) {
            try {
                STDERR.write(bytes);
            } catch (IOException ignored) {
                // stderr is gone: nothing sensible left to report to
            }
        }
    }

    /** The one `error: ` line of X-1, C-6, S-9 and X-6; whatever the message holds, it stays one line. */
    static void error(String message) {
        log("error: " + String.valueOf(message).replace('\n', ' ').replace('\r', ' '));
    }
}
