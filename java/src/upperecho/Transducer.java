// The pure protocol core: the sans-I/O streaming transducer of U. It touches no I/O (no socket, stream or file).
package upperecho;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The pure protocol core: the transform U (spec/PROTOCOL.md T-2, T-3, D-1,
 * D-2) as a sans-I/O streaming transducer. It touches no socket, stream or
 * file: bytes in, bytes out; Server, Client and Cli do all the I/O.
 *
 * feed() returns how many bytes of output() are owed for the input so far;
 * it holds back only an incomplete tail that is still a proper prefix of a
 * well-formed sequence (at most 3 bytes). flush() ends the stream: the
 * held-back tail passes through unchanged. The output buffer is reused
 * across calls (the caller must consume it before the next call), so a long
 * stream allocates nothing after warm-up.
 *
 * Well-formedness is Unicode Table 3-7 exactly:
 *   00..7F
 *   C2..DF  80..BF
 *   E0      A0..BF  80..BF
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF  80..BF
 *   F1..F3  80..BF  80..BF  80..BF
 *   F4      80..8F  80..BF  80..BF
 * (C0, C1 and F5..FF never start a sequence.)
 */
public final class Transducer {
    /** 8 bytes at once: eight ASCII bytes read and written, or a packed replacement (Table.bmp) stored. */
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final Table table;
    private final byte[] ascii;
    private final long[] bmp;
    /** Whether U on ASCII is exactly a-z to A-Z (what the pinned table says): the condition for fast(). */
    private final boolean plainAscii;
    private final byte[] pending = new byte[4];
    private int pendingLength;
    private int pendingNeed;
    private byte[] out;

    public Transducer() {
        this(Table.get());
    }

    public Transducer(Table table) {
        this.table = table;
        this.ascii = table.ascii;
        this.bmp = table.bmp;
        this.out = new byte[0];
        boolean plain = true;
        for (int b = 0; b < 0x80; b++) {
            plain &= ascii[b] == (byte) (b >= 'a' && b <= 'z' ? b - 0x20 : b);
        }
        this.plainAscii = plain;
    }

    /** Eight ASCII bytes (no high bit set) with a-z uppercased, branch-free (no carry crosses a byte). */
    private static long upperAscii8(long w) {
        long lower = (w + 0x1F1F1F1F1F1F1F1FL) & ~(w + 0x0505050505050505L) & 0x8080808080808080L; // 61..7A
        return w - (lower >>> 2); // 0x80 >>> 2 = 0x20 in exactly those bytes
    }

    /** The output buffer; valid up to the length returned by the last feed()/flush(). */
    public byte[] output() {
        return out;
    }

    /** Length of the sequence a lead byte starts, or 0 when it never starts one. */
    private static int sequenceLength(int lead) {
        if (lead < 0x80) {
            return 1;
        }
        if (lead < 0xC2) {
            return 0;
        }
        if (lead < 0xE0) {
            return 2;
        }
        if (lead < 0xF0) {
            return 3;
        }
        if (lead < 0xF5) {
            return 4;
        }
        return 0;
    }

    /** Whether byte b may follow at position index (1..3) of a sequence led by lead. */
    private static boolean continues(int lead, int index, int b) {
        if (index == 1) {
            switch (lead) {
                case 0xE0: return b >= 0xA0 && b <= 0xBF;
                case 0xED: return b >= 0x80 && b <= 0x9F;
                case 0xF0: return b >= 0x90 && b <= 0xBF;
                case 0xF4: return b >= 0x80 && b <= 0x8F;
                default: return b >= 0x80 && b <= 0xBF;
            }
        }
        return b >= 0x80 && b <= 0xBF;
    }

    private void ensureCapacity(int needed) {
        if (out.length < needed) {
            out = new byte[Math.max(needed, Math.min(out.length * 2, Integer.MAX_VALUE - 16))];
        }
    }

    /** Transform in[off, off+len); return how many bytes of output() are owed now. */
    public int feed(byte[] in, int off, int len) {
        // Output is at most 3x the input (T-4), counting the held-back tail; +8 because a
        // packed replacement is stored as 8 bytes, of which only the first count.
        ensureCapacity(3 * (len + pendingLength) + 8);
        final byte[] o = out;
        final byte[] up = ascii;
        final long[] packed = bmp;
        int n = 0;
        int i = off;
        final int end = off + len;

        // A sequence split across reads (D-1): extend the held-back tail.
        while (pendingLength > 0 && i < end) {
            int b = in[i] & 0xFF;
            if (continues(pending[0] & 0xFF, pendingLength, b)) {
                pending[pendingLength++] = (byte) b;
                i++;
                if (pendingLength == pendingNeed) {
                    n = emit(pending, 0, pendingNeed, o, n);
                    pendingLength = 0;
                }
            } else {
                // Not well-formed: the lead and its continuation bytes pass through (T-3);
                // b itself is scanned afresh below (continuation bytes never lead).
                System.arraycopy(pending, 0, o, n, pendingLength);
                n += pendingLength;
                pendingLength = 0;
            }
        }

        while (i < end) {
            if (plainAscii && i <= end - 10) {
                long at = fast(in, i, end - 10, o, n, packed);
                i = (int) (at >>> 32);
                n = (int) at;
                if (i == end) { // a sequence that starts in fast's last word may end exactly at end
                    break;
                }
            }
            // Byte by byte: the last few bytes, and what the fast path stops at.
            int c = in[i];
            if (c >= 0) {
                o[n++] = up[c];
                i++;
                continue;
            }
            // General path: 4-byte sequences, bytes that are not well-formed, a tail to hold back, and the
            // 2- and 3-byte sequences among a read's last bytes.
            int lead = c & 0xFF;
            int need = sequenceLength(lead);
            if (need == 0) {
                o[n++] = (byte) c;
                i++;
                continue;
            }
            int k = 1;
            while (k < need && i + k < end && continues(lead, k, in[i + k] & 0xFF)) {
                k++;
            }
            if (k == need) {
                n = emit(in, i, need, o, n);
                i += need;
            } else if (i + k == end) {
                // A proper prefix of a well-formed sequence at the end of input: hold it back (D-2).
                System.arraycopy(in, i, pending, 0, k);
                pendingLength = k;
                pendingNeed = need;
                i = end;
            } else {
                o[n++] = (byte) c; // T-3: copy this byte, move one byte on
                i++;
            }
        }
        return n;
    }

    /**
     * The fast path while i <= limit (end - 10: a word at i, and a 3-byte sequence that starts in
     * it, are in bounds): ASCII eight bytes at a time, then the whole run of 2- and 3-byte
     * sequences (a Greek or Georgian word) up to the next ASCII byte. On mixed text mispredicted
     * branches cost most, so both lengths share one loop. It stops at a byte it does not take
     * (4-byte sequences, bytes not well-formed) for feed's byte-by-byte path, and returns i and n as
     * (long) i << 32 | n. A method of its own (too big for C2 to inline), so that its loops keep i
     * and n in registers: inside feed they were spilled to the stack.
     */
    private static long fast(byte[] in, int i, int limit, byte[] o, int n, long[] packed) {
        while (i <= limit) {
            long w = (long) LONG.get(in, i);
            long high = w & 0x8080808080808080L;
            // All eight bytes are written; when a non-ASCII byte is among them only the
            // ASCII ones before it count, and the rest is overwritten by what follows
            // (feed's capacity has 8 bytes of slack for exactly such stores).
            LONG.set(o, n, upperAscii8(w & 0x7F7F7F7F7F7F7F7FL));
            if (high == 0) {
                i += 8;
                n += 8;
                continue;
            }
            int k = Long.numberOfTrailingZeros(high) >>> 3; // little-endian
            i += k;
            n += k;
            int c = in[i];
            do {
                long r;
                int length;
                // Signed byte compares: (byte) 0xC0 = -64, so c1 < -64 is exactly 80..BF.
                if (c < (byte) 0xE0) {
                    int c1 = in[i + 1];
                    if (c < (byte) 0xC2 || c1 >= (byte) 0xC0) {
                        return (long) i << 32 | n;
                    }
                    r = packed[((c & 0x1F) << 6) | (c1 & 0x3F)];
                    if (r == 0) {
                        r = (c & 0xFFL) | (c1 & 0xFFL) << 8 | 2L << 56; // maps to itself
                    }
                    length = 2;
                } else {
                    int c1 = in[i + 1];
                    int c2 = in[i + 2];
                    if (c >= (byte) 0xF0 || c1 >= (byte) 0xC0 || c2 >= (byte) 0xC0) {
                        return (long) i << 32 | n;
                    }
                    int cp = (c & 0x0F) << 12 | (c1 & 0x3F) << 6 | (c2 & 0x3F);
                    // E0 80..9F (overlong) and ED A0..BF (surrogates) are not well-formed.
                    if (cp < 0x800 || (cp & 0xF800) == 0xD800) {
                        return (long) i << 32 | n;
                    }
                    r = packed[cp];
                    if (r == 0) {
                        r = (c & 0xFFL) | (c1 & 0xFFL) << 8 | (c2 & 0xFFL) << 16 | 3L << 56;
                    }
                    length = 3;
                }
                if (r < 0) {
                    return (long) i << 32 | n;
                }
                LONG.set(o, n, r);
                n += (int) (r >>> 56);
                i += length;
            } while (i <= limit && (c = in[i]) < 0);
        }
        return (long) i << 32 | n;
    }

    /** End of stream: the held-back tail, unchanged (E-1, T-3). Returns the bytes of output() owed. */
    public int flush() {
        ensureCapacity(pendingLength);
        int n = pendingLength;
        System.arraycopy(pending, 0, out, 0, n);
        pendingLength = 0;
        return n;
    }

    private int emit(byte[] src, int at, int length, byte[] o, int n) {
        int cp;
        switch (length) {
            case 2:
                cp = ((src[at] & 0x1F) << 6) | (src[at + 1] & 0x3F);
                break;
            case 3:
                cp = ((src[at] & 0x0F) << 12) | ((src[at + 1] & 0x3F) << 6) | (src[at + 2] & 0x3F);
                break;
            default:
                cp = ((src[at] & 0x07) << 18) | ((src[at + 1] & 0x3F) << 12)
                        | ((src[at + 2] & 0x3F) << 6) | (src[at + 3] & 0x3F);
                break;
        }
        byte[] r = table.lookup(cp);
        if (r == null) {
            System.arraycopy(src, at, o, n, length);
            return n + length;
        }
        System.arraycopy(r, 0, o, n, r.length);
        return n + r.length;
    }
}
