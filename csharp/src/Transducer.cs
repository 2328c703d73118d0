// The pure protocol core: the transform U of spec/PROTOCOL.md as a sans-I/O
// streaming transducer. It touches no I/O (no sockets, no streams, no files):
// bytes in, bytes out, flush at end of stream; Server, Client and the
// transform command are the I/O shells around it.
//
// Scanning follows T-3 literally: at each byte, if a well-formed sequence of
// Unicode Table 3-7 starts there it is mapped through the pinned table (T-4)
// and skipped; otherwise that one byte is copied unchanged and the scan moves
// one byte on. Never U+FFFD, never a dropped byte, never the runtime's case
// functions or text decoders (T-5).
//
// Streaming (D-1, D-2): a tail that is still a proper prefix of a well-formed
// sequence (at most 3 bytes) is held back until more input arrives; anything
// that can no longer become well-formed (E0 80, ED A0, ...) is emitted at once.
// Flush() emits the held tail unchanged (E-1).
//
// Buffers are reused: Output grows to 3 * (largest feed + 3) once and is then
// recycled, so a long stream costs no allocation per read (D-4).
using System;

namespace UpperEcho
{
    sealed class Transducer
    {
        readonly byte[][][] pages;
        readonly ulong[] packed; // Table.Packed: BMP replacements, one 8-byte store each
        readonly byte[] tail = new byte[3];
        int tailLength;
        readonly byte[] scratch = new byte[6];
        byte[] output;
        int outLength;

        public Transducer()
        {
            pages = Table.Pages;
            packed = Table.Packed;
            output = new byte[64];
        }

        /// <summary>The output buffer; Feed and Flush return how many of its leading bytes are valid.
        /// It is overwritten by the next call.</summary>
        public byte[] Output { get { return output; } }

        /// <summary>Transform input[offset, offset+count); return the number of bytes owed now, in Output.</summary>
        public int Feed(byte[] input, int offset, int count)
        {
            if (input == null) throw new ArgumentNullException("input");
            if (offset < 0 || count < 0 || offset + count > input.Length) throw new ArgumentOutOfRangeException("count");
            // +8: a packed replacement is stored as 8 bytes, of which only the first count.
            EnsureCapacity(3 * (count + tailLength + 1) + 8);
            outLength = 0;
            int i = offset, end = offset + count;
            if (tailLength > 0)
            {
                // Decide every sequence that starts in the held tail on a small scratch copy:
                // it needs at most 3 more bytes (a sequence is at most 4 bytes long).
                int held = tailLength;
                int take = Math.Min(count, 3);
                Buffer.BlockCopy(tail, 0, scratch, 0, held);
                Buffer.BlockCopy(input, offset, scratch, held, take);
                tailLength = 0;
                int p = Run(scratch, 0, held + take, held, false);
                if (tailLength > 0) return outLength; // still incomplete: all of the input went into the tail
                i += p - held;
            }
            Run(input, i, end, end, false);
            return outLength;
        }

        /// <summary>End of stream: return the held-back tail, unchanged (T-3, E-1), in Output.</summary>
        public int Flush()
        {
            EnsureCapacity(16);
            outLength = 0;
            if (tailLength > 0)
            {
                int held = tailLength;
                Buffer.BlockCopy(tail, 0, scratch, 0, held);
                tailLength = 0;
                Run(scratch, 0, held, held, true);
            }
            return outLength;
        }

        /// <summary>Scan src from i while i &lt; stop; sequences may read up to end. Returns the new position.
        /// When not final, an incomplete well-formed prefix running into end becomes the held tail.
        /// Output must have room for 3 * (stop - i) + 8 bytes after outLength.</summary>
        unsafe int Run(byte[] src, int i, int end, int stop, bool final)
        {
            int n = outLength;
            if (i >= stop) return i;
            fixed (byte* s = src, o = output)
            fixed (ulong* packedBmp = packed)
            {
                while (i < stop)
                {
                    int b = s[i];
                    if (b < 0x80)
                    {
                        int run = AsciiRun(s + i, o + n, stop - i); // at least 1: s[i] is ASCII
                        i += run;
                        n += run;
                        continue;
                    }
                    // Fast paths: a complete well-formed 2- or 3-byte sequence, its replacement (or itself)
                    // packed in one ulong and stored with one 8-byte write.
                    if (b < 0xE0)
                    {
                        if (b >= 0xC2 && i + 1 < end)
                        {
                            int c1 = s[i + 1];
                            if ((c1 & 0xC0) == 0x80)
                            {
                                ulong r = packedBmp[((b & 0x1F) << 6) | (c1 & 0x3F)];
                                if (r == 0) r = (ulong)b | (ulong)c1 << 8 | 2UL << 56; // maps to itself
                                if (r != ulong.MaxValue)
                                {
                                    *(ulong*)(o + n) = r;
                                    n += (int)(r >> 56);
                                    i += 2;
                                    continue;
                                }
                            }
                        }
                    }
                    else if (b < 0xF0 && i + 2 < end)
                    {
                        int c1 = s[i + 1], c2 = s[i + 2];
                        if ((c1 & 0xC0) == 0x80 && (c2 & 0xC0) == 0x80)
                        {
                            int v = (b & 0x0F) << 12 | (c1 & 0x3F) << 6 | (c2 & 0x3F);
                            // E0 80..9F (overlong) and ED A0..BF (surrogates) are not well-formed.
                            if (v >= 0x800 && (v & 0xF800) != 0xD800)
                            {
                                ulong r = packedBmp[v];
                                if (r == 0) r = (ulong)b | (ulong)c1 << 8 | (ulong)c2 << 16 | 3UL << 56;
                                if (r != ulong.MaxValue)
                                {
                                    *(ulong*)(o + n) = r;
                                    n += (int)(r >> 56);
                                    i += 3;
                                    continue;
                                }
                            }
                        }
                    }
                    // General path: 4-byte sequences, bytes that are not well-formed, a tail to hold back.
                    int need, lo = 0x80, hi = 0xBF, cp;
                    if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; }
                    else if (b >= 0xE0 && b <= 0xEF)
                    {
                        need = 2; cp = b & 0x0F;
                        if (b == 0xE0) lo = 0xA0; else if (b == 0xED) hi = 0x9F; // no overlongs, no surrogates
                    }
                    else if (b >= 0xF0 && b <= 0xF4)
                    {
                        need = 3; cp = b & 0x07;
                        if (b == 0xF0) lo = 0x90; else if (b == 0xF4) hi = 0x8F; // no overlongs, nothing above 10FFFF
                    }
                    else
                    {
                        o[n++] = (byte)b; // 80-C1, F5-FF never start a well-formed sequence
                        i++;
                        continue;
                    }
                    int j = 1;
                    bool ranOut = false;
                    for (; j <= need; j++)
                    {
                        if (i + j >= end) { ranOut = true; break; }
                        int c = s[i + j];
                        if (c < lo || c > hi) break;
                        cp = (cp << 6) | (c & 0x3F);
                        lo = 0x80; hi = 0xBF;
                    }
                    if (j > need)
                    {
                        byte[][] page = pages[cp >> 8];
                        byte[] replacement = page == null ? null : page[cp & 0xFF];
                        if (replacement == null)
                        {
                            for (int k = 0; k <= need; k++) o[n++] = s[i + k];
                        }
                        else
                        {
                            for (int k = 0; k < replacement.Length; k++) o[n++] = replacement[k];
                        }
                        i += need + 1;
                    }
                    else if (ranOut && !final)
                    {
                        // D-2: a proper prefix of a well-formed sequence; hold it until more input comes.
                        int len = end - i;
                        Buffer.BlockCopy(src, i, tail, 0, len);
                        tailLength = len;
                        i = end;
                        break;
                    }
                    else
                    {
                        o[n++] = (byte)b; // T-3: not the start of a well-formed sequence
                        i++;
                    }
                }
            }
            outLength = n;
            return i;
        }

        /// <summary>ASCII fast path: uppercase the run of ASCII bytes at src[0..count) into dst; return its length.
        /// Eight bytes at a time (SWAR): a-z -> A-Z, every other ASCII byte unchanged. Writes up to
        /// 8 bytes past the run's end in dst (the caller's +8 slack); the caller overwrites them.</summary>
        static unsafe int AsciiRun(byte* src, byte* dst, int count)
        {
            byte* s = src, d = dst, end = src + count;
            while (end - s >= 8)
            {
                ulong word = *(ulong*)s;
                ulong high = word & 0x8080808080808080UL; // bytes 80..FF end the run
                ulong x = word & 0x7F7F7F7F7F7F7F7FUL;
                // Every byte of x is below 0x80, so these sums never carry into the next byte.
                ulong atLeastA = x + 0x1F1F1F1F1F1F1F1FUL; // bit 7 set where byte >= 'a' (0x61)
                ulong aboveZ = x + 0x0505050505050505UL;   // bit 7 set where byte > 'z' (0x7A)
                ulong lower = atLeastA & ~aboveZ & 0x8080808080808080UL;
                *(ulong*)d = x ^ (lower >> 2); // clear 0x20 in the lowercase letters
                if (high != 0)
                {
                    // Only the ASCII bytes before the first high one count; the caller overwrites the rest.
                    // ((high & -high) >> 7) is 1 << 8k for the first high byte k; the multiply puts k in the top byte.
                    int k = (int)((((high & (~high + 1)) >> 7) * 0x0001020304050607UL) >> 56);
                    return (int)(s - src) + k;
                }
                s += 8;
                d += 8;
            }
            while (s < end && *s < 0x80)
            {
                int b = *s;
                *d = (byte)(b >= 'a' && b <= 'z' ? b - 0x20 : b);
                s++;
                d++;
            }
            return (int)(s - src);
        }

        void EnsureCapacity(int needed)
        {
            if (output.Length < needed) output = new byte[Math.Max(needed, output.Length * 2)];
        }
    }
}
