// Work-arounds for Java runtime specifics: raw argv bytes and canonical IPv6 text. No protocol logic.
package upperecho;

import java.io.IOException;
import java.net.Inet6Address;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Where the JVM hides or rewrites what the spec needs exactly. */
final class Quirks {
    private Quirks() {
    }

    /**
     * The exact bytes of argv, so a MESSAGE is sent as given (C-2), like the
     * Python reference's os.fsencode; null when they cannot be recovered.
     *
     * The JVM decodes argv with the platform charset (sun.jnu.encoding). Under
     * a UTF-8 locale (C.UTF-8, tr_TR.UTF-8, ...) that is lossless, but under
     * LANG=C it is ASCII and non-ASCII bytes are lost. On Linux the raw bytes
     * are in /proc/self/cmdline: our arguments are its last argv.length
     * entries. They are used only when they agree with what the JVM decoded
     * (same count; identical wherever the argument is ASCII). Elsewhere (no
     * /proc) the caller re-encodes the decoded strings as UTF-8, which is exact
     * under a UTF-8 locale and the stated limitation otherwise.
     */
    static byte[][] rawArguments(String[] argv) {
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
            StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    /** The charset the JVM decoded argv with, or null when it does not say. */
    private static Charset platformCharset() {
        try {
            String name = System.getProperty("sun.jnu.encoding");
            return name == null ? null : Charset.forName(name);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /**
     * RFC 5952 text of an IPv6 address, what inet_ntop writes (Java's own
     * getHostAddress writes 0:0:0:0:0:0:0:1). Never with a %scope: a zone
     * index is not part of the language and never appears in a log or
     * readiness line.
     */
    static String ipv6Text(Inet6Address ip) {
        byte[] b = ip.getAddress();
        int[] words = new int[8];
        for (int i = 0; i < 8; i++) {
            words[i] = ((b[2 * i] & 0xFF) << 8) | (b[2 * i + 1] & 0xFF);
        }
        StringBuilder s = new StringBuilder();
        boolean v4mapped = words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == 0
                && words[4] == 0 && words[5] == 0xFFFF;
        if (v4mapped) {
            return s.append("::ffff:").append(b[12] & 0xFF).append('.').append(b[13] & 0xFF).append('.')
                    .append(b[14] & 0xFF).append('.').append(b[15] & 0xFF).toString();
        }
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
        return s.toString();
    }
}
