package upperecho;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;

/** Shared helpers: raw stdout/stderr and address formatting. */
final class Io {
    /** Raw stdout: bytes go out unchanged and unbuffered (C-4). Never a Writer. */
    static final FileOutputStream STDOUT = new FileOutputStream(FileDescriptor.out);
    private static final FileOutputStream STDERR = new FileOutputStream(FileDescriptor.err);

    private Io() {
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

    static void error(String message) {
        log("error: " + message);
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
            return "[" + format6((Inet6Address) ip) + "]:" + a.getPort();
        }
        return ip.getHostAddress() + ":" + a.getPort();
    }

    /** RFC 5952 text of an IPv6 address (what inet_ntop writes), with %scope when there is one. */
    static String format6(Inet6Address ip) {
        byte[] b = ip.getAddress();
        int[] words = new int[8];
        for (int i = 0; i < 8; i++) {
            words[i] = ((b[2 * i] & 0xFF) << 8) | (b[2 * i + 1] & 0xFF);
        }
        StringBuilder s = new StringBuilder();
        boolean v4mapped = words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == 0
                && words[4] == 0 && words[5] == 0xFFFF;
        if (v4mapped) {
            s.append("::ffff:").append(b[12] & 0xFF).append('.').append(b[13] & 0xFF).append('.')
                    .append(b[14] & 0xFF).append('.').append(b[15] & 0xFF);
        } else {
            // the longest run (first on ties) of at least two zero words becomes "::"
            int bestStart = -1;
            int bestLength = 1;
            for (int i = 0; i < 8; ) {
                if (words[i] != 0) {
                    i++;
                    continue;
                }
                int j = i;
                while (j < 8 && words[j] == 0) {
                    j++;
                }
                if (j - i > bestLength) {
                    bestStart = i;
                    bestLength = j - i;
                }
                i = j;
            }
            for (int i = 0; i < 8; i++) {
                if (i == bestStart) {
                    s.append("::");
                    i += bestLength - 1;
                    continue;
                }
                if (s.length() > 0 && s.charAt(s.length() - 1) != ':') {
                    s.append(':');
                }
                s.append(Integer.toHexString(words[i]));
            }
        }
        String host = ip.getHostAddress();
        int percent = host.indexOf('%');
        if (percent >= 0) {
            s.append(host.substring(percent));
        }
        return s.toString();
    }
}
