package upperecho;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A small argparse work-alike, so the command line behaves like the Python
 * reference (spec/PROTOCOL.md X-1): `--flag VALUE` and `--flag=VALUE`,
 * unambiguous prefixes of long flags, `--` ends the flags, negative numbers
 * are values, -h/--help prints usage and exits 0, every usage error is one
 * `error: ` line on stderr and exit 2.
 */
final class Args {
    /** A usage error: exit 2 with one `error: ` line. */
    static final class UsageError extends Exception {
        UsageError(String message) {
            super(message);
        }
    }

    /** -h/--help was given: print usage to stdout, exit 0. */
    static final class HelpRequested extends Exception {
        HelpRequested() {
            super(null, null, false, false);
        }
    }

    private static final Pattern NEGATIVE_NUMBER = Pattern.compile("^-\\d+$|^-\\d*\\.\\d+$");
    private static final Pattern DECIMAL = Pattern.compile("[+-]?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d+)?");

    private final List<String> flags;
    final Map<String, String> values = new LinkedHashMap<>();
    /** Positional arguments with their index in the original argv (for raw bytes). */
    final List<String> positionals = new ArrayList<>();
    final List<Integer> positionalIndexes = new ArrayList<>();

    private Args(List<String> flags) {
        this.flags = flags;
    }

    /**
     * Parse argv[from..] against the long flags (each takes one value).
     * Positional arguments are allowed only when allowPositionals.
     */
    /** A positional argument where the command takes them; otherwise it is reported as unrecognized. */
    private void takePositional(String arg, int index, boolean allowPositionals, List<String> unrecognized) {
        if (allowPositionals) {
            positionals.add(arg);
            positionalIndexes.add(index);
        } else {
            unrecognized.add(arg);
        }
    }

    static Args parse(String[] argv, int from, List<String> flags, boolean allowPositionals)
            throws UsageError, HelpRequested {
        Args args = new Args(flags);
        List<String> unrecognized = new ArrayList<>();
        boolean onlyPositionals = false;
        for (int i = from; i < argv.length; i++) {
            String arg = argv[i];
            if (onlyPositionals || !looksLikeFlag(arg)) {
                args.takePositional(arg, i, allowPositionals, unrecognized);
                continue;
            }
            if (arg.equals("--")) {
                onlyPositionals = true;
                continue;
            }
            if (arg.equals("-h") || arg.equals("--help")) {
                throw new HelpRequested();
            }
            String name = arg;
            String value = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                name = arg.substring(0, eq);
                value = arg.substring(eq + 1);
            }
            String flag = args.match(name);
            if (flag == null) {
                if (name.equals("--h") || name.equals("--he") || name.equals("--hel")) {
                    throw new HelpRequested();
                }
                if (arg.indexOf(' ') >= 0) { // argparse: a space means it was meant as a positional
                    args.takePositional(arg, i, allowPositionals, unrecognized);
                    continue;
                }
                unrecognized.add(arg);
                continue;
            }
            if (value == null) {
                if (i + 1 >= argv.length || (looksLikeFlag(argv[i + 1]))) {
                    throw new UsageError("argument " + flag + ": expected one argument");
                }
                value = argv[++i];
            }
            args.values.put(flag, value);
        }
        if (!unrecognized.isEmpty()) {
            throw new UsageError("unrecognized arguments: " + String.join(" ", unrecognized));
        }
        return args;
    }

    private static boolean looksLikeFlag(String arg) {
        return arg.length() > 1 && arg.charAt(0) == '-' && !NEGATIVE_NUMBER.matcher(arg).matches();
    }

    /** The flag `name` names exactly or as an unambiguous prefix; null when none. */
    private String match(String name) throws UsageError {
        if (!name.startsWith("--")) {
            return null;
        }
        if (flags.contains(name)) {
            return name;
        }
        List<String> candidates = new ArrayList<>();
        for (String f : flags) {
            if (f.startsWith(name)) {
                candidates.add(f);
            }
        }
        if (candidates.size() > 1) {
            throw new UsageError("ambiguous option: " + name + " could match " + String.join(", ", candidates));
        }
        return candidates.isEmpty() ? null : candidates.get(0);
    }

    String string(String flag, String fallback) {
        return values.getOrDefault(flag, fallback);
    }

    /** A whole number in [low, high] (high < 0: no upper bound). */
    long integer(String flag, long fallback, long low, long high) throws UsageError {
        String text = values.get(flag);
        if (text == null) {
            return fallback;
        }
        BigInteger value;
        try {
            value = new BigInteger(text.strip().replace("_", "").replaceFirst("^\\+", ""));
        } catch (NumberFormatException e) {
            throw new UsageError("argument " + flag + ": not a whole number: '" + text + "'");
        }
        if (value.compareTo(BigInteger.valueOf(low)) < 0
                || (high >= 0 && value.compareTo(BigInteger.valueOf(high)) > 0)) {
            String bound = high >= 0 ? low + "-" + high : "at least " + low;
            throw new UsageError("argument " + flag + ": " + value + " is out of range (" + bound + ")");
        }
        return value.longValueExact();
    }

    /** Non-negative (or positive) decimal seconds, returned as milliseconds (rounded up, capped). */
    long seconds(String flag, double fallback, boolean positive) throws UsageError {
        String text = values.get(flag);
        if (text == null) {
            return toMillis(BigDecimal.valueOf(fallback));
        }
        String t = text.strip();
        if (!DECIMAL.matcher(t).matches()) {
            throw new UsageError("argument " + flag + ": not a number of seconds: '" + text + "'");
        }
        BigDecimal value;
        try {
            value = new BigDecimal(t);
        } catch (NumberFormatException e) { // exponent out of int range
            throw new UsageError("argument " + flag + ": " + text + " is out of range");
        }
        if (value.signum() < 0 || (positive && value.signum() == 0)) {
            throw new UsageError("argument " + flag + ": " + text + " is out of range ("
                    + (positive ? "above" : "at least") + " 0)");
        }
        return toMillis(value);
    }

    private static long toMillis(BigDecimal seconds) {
        if (seconds.signum() == 0) {
            return 0;
        }
        BigDecimal ms = seconds.movePointRight(3).setScale(0, java.math.RoundingMode.CEILING);
        if (ms.compareTo(BigDecimal.valueOf(Integer.MAX_VALUE)) > 0) {
            return Integer.MAX_VALUE; // about 24 days: longer than any socket timeout needs to be
        }
        return Math.max(1, ms.longValue());
    }
}
