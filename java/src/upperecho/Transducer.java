package upperecho;

/**
 * The transform U (spec/PROTOCOL.md T-2, T-3, D-1, D-2) as a streaming
 * transducer: bytes in, bytes out, no I/O.
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
    private final UppercaseTable table;
    private final byte[] ascii;
    private final byte[] pending = new byte[4];
    private int pendingLength;
    private int pendingNeed;
    private byte[] out;

    public Transducer() {
        this(UppercaseTable.get());
    }

    public Transducer(UppercaseTable table) {
        this.table = table;
        this.ascii = table.ascii;
        this.out = new byte[0];
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

    public int feed(byte[] in) {
        return feed(in, 0, in.length);
    }

    /** Transform in[off, off+len); return how many bytes of output() are owed now. */
    public int feed(byte[] in, int off, int len) {
        // Output is at most 3x the input (T-4), counting the held-back tail.
        ensureCapacity(3 * (len + pendingLength));
        final byte[] o = out;
        final byte[] up = ascii;
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
            byte c = in[i];
            if (c >= 0) {
                // ASCII fast path.
                o[n++] = up[c];
                i++;
                continue;
            }
            int lead = c & 0xFF;
            int need = sequenceLength(lead);
            if (need == 0) {
                o[n++] = c;
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
                o[n++] = c; // T-3: copy this byte, move one byte on
                i++;
            }
        }
        return n;
    }

    /** End of stream: the held-back tail, unchanged (E-1, T-3). Returns the bytes of output() owed. */
    public int flush() {
        ensureCapacity(pendingLength);
        int n = pendingLength;
        System.arraycopy(pending, 0, out, 0, n);
        pendingLength = 0;
        return n;
    }

    /** Whether a tail is being held back. */
    public boolean holding() {
        return pendingLength > 0;
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
