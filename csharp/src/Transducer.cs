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
        readonly ulong[] packed; // Table.Packed: every BMP code point's mapping, one 8-byte store each
        readonly ulong[] pairs; // Table.Pairs: the same for 2-byte sequences, indexed by their two bytes
        readonly byte[] tail = new byte[3];
        int tailLength;
        readonly byte[] scratch = new byte[6];
        byte[] output;
        int outLength;

        public Transducer()
        {
            pages = Table.Pages;
            packed = Table.Packed;
            pairs = Table.Pairs;
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

        /// <summary>Scan src from start while the position is below stop; sequences may read up to end. Returns
        /// the new position. When not final, an incomplete well-formed prefix running into end becomes the held
        /// tail. Output must have room for 3 * (stop - start) + 8 bytes after outLength.</summary>
        /// <remarks>Written for Mono's JIT, which keeps few variables in registers: the hot loop works on four
        /// pointers and the table, and everything that is not ASCII or a complete 2- or 3-byte sequence
        /// goes to Slow, a separate method, so that its variables do not crowd the loop's out of registers.
        /// With the pair table, 1.3x the speed of one method with both on mixed text, 1.7x on Cyrillic.
        /// (Tried and slower under Mono: a branch-free choice between the 2- and 3-byte forms, and a SWAR
        /// step after every character instead of testing the next byte; an inner loop for runs of 2-byte
        /// sequences, 1.6x on Cyrillic but 0.94x on mixed text.)</remarks>
        unsafe int Run(byte[] src, int start, int end, int stop, bool final)
        {
            if (start >= stop) return start;
            fixed (byte* s = src, o = output)
            fixed (ulong* table = packed, pairTable = pairs)
            {
                byte* p = s + start, q = o + outLength, pStop = s + stop, pEnd = s + end;
                while (p < pStop)
                {
                    if (*p < 0x80)
                    {
                        // ASCII, eight bytes at a time (SWAR): a-z -> A-Z, every other ASCII byte unchanged,
                        // all eight stored. Only the bytes before the first high byte count; the rest of the
                        // store is overwritten by what follows (the +8 slack of Output).
                        while (true)
                        {
                            if (pStop - p < 8)
                            {
                                int a;
                                while (p < pStop && (a = *p) < 0x80)
                                {
                                    *q++ = (byte)(a >= 'a' && a <= 'z' ? a - 0x20 : a);
                                    p++;
                                }
                                break;
                            }
                            ulong word = *(ulong*)p;
                            ulong x = word & 0x7F7F7F7F7F7F7F7FUL;
                            // Every byte of x is below 0x80, so these sums never carry into the next byte;
                            // bit 7 ends up set where 'a' <= byte <= 'z', and >> 2 makes it the 0x20 to clear.
                            ulong lower = (x + 0x1F1F1F1F1F1F1F1FUL) & ~(x + 0x0505050505050505UL) & 0x8080808080808080UL;
                            *(ulong*)q = x ^ (lower >> 2);
                            ulong high = word & 0x8080808080808080UL; // bytes 80..FF end the run
                            if (high == 0)
                            {
                                p += 8;
                                q += 8;
                                continue;
                            }
                            // ((high & -high) >> 7) is 1 << 8k for the first high byte k; the multiply puts k
                            // in the top byte.
                            int k = (int)((((high & (~high + 1)) >> 7) * 0x0001020304050607UL) >> 56);
                            p += k;
                            q += k;
                            break;
                        }
                        if (p >= pStop) break;
                    }
                    // *p is 80..FF. Fast paths: a complete well-formed 2- or 3-byte sequence. The packed table
                    // holds the UTF-8 of every BMP code point's mapping (its own bytes when it maps to
                    // itself), stored with one 8-byte write.
                    int b = *p;
                    if (b < 0xE0)
                    {
                        if (pEnd - p >= 2)
                        {
                            ulong r = pairTable[*(ushort*)p]; // 0: not a well-formed 2-byte sequence
                            if (r != 0 && r != ulong.MaxValue)
                            {
                                *(ulong*)q = r;
                                q += (int)(r >> 56);
                                p += 2;
                                continue;
                            }
                        }
                    }
                    else if (b < 0xF0 && pEnd - p >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80)
                    {
                        int v = (b & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
                        // E0 80..9F (overlong) and ED A0..BF (surrogates) are not well-formed.
                        if (v >= 0x800 && (v & 0xF800) != 0xD800)
                        {
                            ulong r = table[v];
                            if (r != ulong.MaxValue)
                            {
                                *(ulong*)q = r;
                                q += (int)(r >> 56);
                                p += 3;
                                continue;
                            }
                        }
                    }
                    int n = (int)(q - o);
                    int i = Slow(src, s, (int)(p - s), end, final, o, ref n);
                    p = s + i;
                    q = o + n;
                    if (tailLength > 0) break; // D-2: held back; p is at end
                }
                outLength = (int)(q - o);
                return (int)(p - s);
            }
        }

        /// <summary>One step of the scan at s[i] (not ASCII): a 4-byte sequence, a byte that does not start a
        /// well-formed sequence, a sequence cut short by end (held as the tail unless final), or whatever the
        /// fast paths declined. Writes to o at n; returns the position after the step.</summary>
        unsafe int Slow(byte[] src, byte* s, int i, int end, bool final, byte* o, ref int n)
        {
            int b = s[i];
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
                return i + 1;
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
                return i + need + 1;
            }
            if (ranOut && !final)
            {
                // D-2: a proper prefix of a well-formed sequence; hold it until more input comes.
                int len = end - i;
                Buffer.BlockCopy(src, i, tail, 0, len);
                tailLength = len;
                return end;
            }
            o[n++] = (byte)b; // T-3: not the start of a well-formed sequence
            return i + 1;
        }

        void EnsureCapacity(int needed)
        {
            if (output.Length < needed) output = new byte[Math.Max(needed, output.Length * 2)];
        }
    }
}
