// The pinned Unicode 15.0 full uppercase mapping of spec/PROTOCOL.md T-4.
//
// Table loading: csharp/bin/build embeds spec/uppercase.tsv into the assembly
// (mcs -resource:...,uppercase.tsv), so build/upper-echo.exe is self-contained
// (containers need nothing but the exe and the runtime). It is parsed once, on
// first use; the client never touches it, so it costs the client nothing.
//
// Lookup is a sparse two-level array indexed by code point (astral included):
// pages of 256 code points, allocated only where the table has entries. Each
// entry holds the UTF-8 bytes of the replacement, ready to copy. The runtime's
// case functions are never used (T-5).
//
// The transducer's hot path uses Packed instead: one ulong per BMP code
// point, the replacement's UTF-8 bytes little-endian in the low 7 bytes and
// their count in the top byte. Code points that map to themselves hold their
// own UTF-8 bytes, so the hot path needs no "is it in the table" branch, which
// mixed text cannot predict. All bits set when the replacement is longer than
// 7 bytes, which the pinned table never is. Entries below 0x80 and for the
// surrogates D800-DFFF are never read (not well-formed as multi-byte sequences).
// Pairs is the same for 2-byte sequences, indexed by their two bytes read as one
// little-endian ushort, 0 where the pair is not a well-formed sequence: one load
// checks and maps it. (The 8-byte stores and this index assume little-endian.)
using System;
using System.IO;
using System.Reflection;
using System.Text;

namespace UpperEcho
{
    static class Table
    {
        const string ResourceName = "uppercase.tsv";
        const int MaxCodePoint = 0x10FFFF;

        static readonly object Gate = new object();
        static byte[][][] pages;
        static ulong[] packed, pairs;

        /// <summary>Pages[cp >> 8][cp & 0xFF]: the UTF-8 bytes of the uppercase mapping of cp, or null (a null
        /// page or entry) when cp maps to itself.</summary>
        public static byte[][][] Pages
        {
            get
            {
                byte[][][] p = pages;
                if (p != null) return p;
                lock (Gate)
                {
                    if (pages == null) pages = Load();
                    return pages;
                }
            }
        }

        /// <summary>Pack(Pages), computed once.</summary>
        public static ulong[] Packed
        {
            get
            {
                ulong[] p = packed;
                if (p != null) return p;
                byte[][][] source = Pages;
                lock (Gate)
                {
                    if (packed == null) packed = Pack(source);
                    return packed;
                }
            }
        }

        /// <summary>Packed, indexed by the two bytes of a 2-byte sequence as one little-endian ushort (lead byte
        /// low, continuation byte high): the mapping of every well-formed 2-byte sequence (C2..DF 80..BF), 0 for
        /// every other pair. One load decides and maps such a sequence.</summary>
        public static ulong[] Pairs
        {
            get
            {
                ulong[] p = pairs;
                if (p != null) return p;
                ulong[] source = Packed;
                lock (Gate)
                {
                    if (pairs == null)
                    {
                        var result = new ulong[0x10000];
                        for (int lead = 0xC2; lead <= 0xDF; lead++)
                            for (int next = 0x80; next <= 0xBF; next++)
                                result[lead | next << 8] = source[(lead & 0x1F) << 6 | (next & 0x3F)];
                        pairs = result;
                    }
                    return pairs;
                }
            }
        }

        /// <summary>The BMP part of pages as one packed ulong per code point (see the top of this file).</summary>
        static ulong[] Pack(byte[][][] pages)
        {
            var result = new ulong[0x10000];
            var own = new byte[4];
            for (int hi = 0; hi < 0x100; hi++)
            {
                byte[][] page = pages[hi];
                for (int lo = 0; lo < 0x100; lo++)
                {
                    int cp = (hi << 8) | lo;
                    if (cp >= 0xD800 && cp <= 0xDFFF) continue; // not scalar values: no encoding
                    byte[] r = page == null ? null : page[lo];
                    if (r == null)
                    {
                        int length = EncodeUtf8(cp, own, 0); // maps to itself
                        r = new byte[length];
                        Buffer.BlockCopy(own, 0, r, 0, length);
                    }
                    ulong value = ulong.MaxValue;
                    if (r.Length <= 7)
                    {
                        value = (ulong)r.Length << 56;
                        for (int k = 0; k < r.Length; k++) value |= (ulong)r[k] << (8 * k);
                    }
                    result[(hi << 8) | lo] = value;
                }
            }
            return result;
        }

        static byte[][][] Load()
        {
            Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName);
            if (stream == null)
                throw new InvalidOperationException("the uppercase table is not embedded in the assembly (rebuild with csharp/bin/build)");
            string text;
            using (stream)
            using (var reader = new StreamReader(stream, new UTF8Encoding(false, true)))
                text = reader.ReadToEnd(); // our own well-formed ASCII file, never payload
            return Parse(text);
        }

        /// <summary>Parse the spec/uppercase.tsv format (T-4): comments start with '#', else CP TAB CP[ CP...].</summary>
        static byte[][][] Parse(string text)
        {
            var result = new byte[(MaxCodePoint >> 8) + 1][][];
            foreach (string rawLine in text.Split('\n'))
            {
                string line = rawLine.TrimEnd('\r');
                if (line.Length == 0 || line[0] == '#') continue;
                int tab = line.IndexOf('\t');
                if (tab < 0) throw new FormatException("uppercase table: no TAB in line: " + line);
                int cp = ParseHex(line.Substring(0, tab));
                string[] parts = line.Substring(tab + 1).Split(' ');
                var bytes = new MemoryStream(12);
                var one = new byte[4];
                foreach (string part in parts)
                {
                    int n = EncodeUtf8(ParseHex(part), one, 0);
                    bytes.Write(one, 0, n);
                }
                byte[][] page = result[cp >> 8];
                if (page == null) result[cp >> 8] = page = new byte[256][];
                page[cp & 0xFF] = bytes.ToArray();
            }
            return result;
        }

        static int ParseHex(string s)
        {
            int value = 0;
            if (s.Length == 0 || s.Length > 6) throw new FormatException("uppercase table: bad code point: " + s);
            foreach (char c in s)
            {
                int d;
                if (c >= '0' && c <= '9') d = c - '0';
                else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
                else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
                else throw new FormatException("uppercase table: bad code point: " + s);
                value = value * 16 + d;
            }
            if (value > MaxCodePoint || (value >= 0xD800 && value <= 0xDFFF))
                throw new FormatException("uppercase table: not a scalar value: " + s);
            return value;
        }

        /// <summary>Write the UTF-8 encoding of scalar value cp at buffer[offset]; return its length.</summary>
        static int EncodeUtf8(int cp, byte[] buffer, int offset)
        {
            if (cp < 0x80) { buffer[offset] = (byte)cp; return 1; }
            if (cp < 0x800)
            {
                buffer[offset] = (byte)(0xC0 | (cp >> 6));
                buffer[offset + 1] = (byte)(0x80 | (cp & 0x3F));
                return 2;
            }
            if (cp < 0x10000)
            {
                buffer[offset] = (byte)(0xE0 | (cp >> 12));
                buffer[offset + 1] = (byte)(0x80 | ((cp >> 6) & 0x3F));
                buffer[offset + 2] = (byte)(0x80 | (cp & 0x3F));
                return 3;
            }
            buffer[offset] = (byte)(0xF0 | (cp >> 18));
            buffer[offset + 1] = (byte)(0x80 | ((cp >> 12) & 0x3F));
            buffer[offset + 2] = (byte)(0x80 | ((cp >> 6) & 0x3F));
            buffer[offset + 3] = (byte)(0x80 | (cp & 0x3F));
            return 4;
        }
    }
}
