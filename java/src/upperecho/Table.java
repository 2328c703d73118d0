// The pinned uppercase table of T-4, loaded from the jar resource that bin/build copies from spec/uppercase.tsv.
package upperecho;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

/**
 * The pinned Unicode 15.0 full uppercase mapping of spec/PROTOCOL.md T-4.
 *
 * Table loading: bin/build copies spec/uppercase.tsv into the jar as the
 * resource upperecho/uppercase.tsv, so the jar is self-contained (containers
 * need nothing but the jar). It is parsed once at start-up (1525 lines, well
 * under a millisecond). The runtime's case functions are never used (T-5).
 *
 * Lookup is by int code point (astral ones included) through a two-level
 * array: 0x1100 pages of 256 entries, each entry the UTF-8 encoding of the
 * replacement, or null when the code point maps to itself.
 *
 * The transducer's hot path uses bmp instead: one long per BMP code point,
 * the replacement's UTF-8 bytes packed little-endian in the low 7 bytes and
 * their count in the top byte (0 when the code point maps to itself; -1 when
 * the replacement is longer than 7 bytes, which the pinned table never is).
 */
public final class Table {
    static final String RESOURCE = "uppercase.tsv";
    private static final int PAGES = 0x110000 >> 8;

    private final byte[][][] pages = new byte[PAGES][][];
    /** ASCII fast path, derived from the table itself: ascii[b] is U(b) for b < 0x80. */
    final byte[] ascii = new byte[128];
    /** Packed UTF-8 replacement of each BMP code point, see above. */
    final long[] bmp = new long[0x10000];

    private static Table instance;

    /** The table embedded in the jar. */
    public static synchronized Table get() {
        if (instance == null) {
            try (InputStream in = Table.class.getResourceAsStream(RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("resource " + RESOURCE + " missing from the jar (run bin/build)");
                }
                instance = new Table(new String(in.readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new IllegalStateException("cannot read " + RESOURCE + ": " + e.getMessage(), e);
            }
        }
        return instance;
    }

    /** Parse the tsv format of spec/PROTOCOL.md (comments start with '#'). */
    private Table(String text) {
        for (String line : text.split("\n", -1)) {
            if (line.endsWith("\r")) {
                line = line.substring(0, line.length() - 1);
            }
            if (line.isEmpty() || line.charAt(0) == '#') {
                continue;
            }
            int tab = line.indexOf('\t');
            if (tab < 0) {
                throw new IllegalArgumentException("malformed table line: " + line);
            }
            int from = Integer.parseInt(line.substring(0, tab), 16);
            StringBuilder replacement = new StringBuilder();
            for (String cp : line.substring(tab + 1).split(" ")) {
                replacement.appendCodePoint(Integer.parseInt(cp, 16));
            }
            byte[] utf8 = replacement.toString().getBytes(StandardCharsets.UTF_8);
            if (utf8.length > 3 * utf8Length(from)) {
                throw new IllegalArgumentException("mapping of U+" + Integer.toHexString(from) + " grows more than 3x");
            }
            byte[][] page = pages[from >> 8];
            if (page == null) {
                page = pages[from >> 8] = new byte[256][];
            }
            page[from & 0xFF] = utf8;
            if (from < 0x10000) {
                bmp[from] = pack(utf8);
            }
        }
        for (int b = 0; b < 128; b++) {
            byte[] r = lookup(b);
            if (r == null) {
                ascii[b] = (byte) b;
            } else if (r.length == 1 && r[0] >= 0) {
                ascii[b] = r[0];
            } else {
                throw new IllegalArgumentException("ASCII code point maps outside ASCII: " + b);
            }
        }
    }

    /** Up to 7 bytes little-endian with the count in the top byte; -1 when longer. */
    static long pack(byte[] utf8) {
        if (utf8.length > 7) {
            return -1;
        }
        long packed = (long) utf8.length << 56;
        for (int k = 0; k < utf8.length; k++) {
            packed |= (utf8[k] & 0xFFL) << (8 * k);
        }
        return packed;
    }

    static int utf8Length(int cp) {
        return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    }

    /** UTF-8 bytes of the uppercase mapping of cp, or null when cp maps to itself. Do not modify. */
    public byte[] lookup(int cp) {
        byte[][] page = pages[cp >> 8];
        return page == null ? null : page[cp & 0xFF];
    }
}
