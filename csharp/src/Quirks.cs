// Work-arounds for Mono 6.8 specifics, each a no-op elsewhere.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace UpperEcho
{
    static class Quirks
    {
        /// <summary>
        /// Mono's first Socket runs Socket.InitializeSockets, which enumerates the network interfaces
        /// over netlink and loads System.Configuration, System.Xml and machine.config just to learn
        /// whether IPv4/IPv6 are enabled: ~100 ms of a ~200 ms client start. We set its cached answers
        /// (both supported; a family the kernel lacks still fails in socket(2)) so that never runs.
        /// Private fields: when they are not there (another runtime or version) nothing happens.
        /// </summary>
        public static void SkipSlowSocketInit()
        {
#if MONO
            try
            {
                const BindingFlags flags = BindingFlags.NonPublic | BindingFlags.Static;
                string[] names = { "s_SupportsIPv4", "s_SupportsIPv6", "s_OSSupportsIPv6", "s_Initialized" };
                var fields = new List<FieldInfo>();
                foreach (string name in names)
                {
                    FieldInfo field = typeof(Socket).GetField(name, flags);
                    if (field == null || field.FieldType != typeof(bool)) return;
                    fields.Add(field);
                }
                bool ipv6 = File.Exists("/proc/net/if_inet6");
                foreach (FieldInfo field in fields)
                    field.SetValue(null, field.Name == "s_Initialized" || field.Name == "s_SupportsIPv4" || ipv6);
            }
            catch (Exception)
            {
                // Fall back to Mono's own (slow but correct) initialization.
            }
#endif
        }

        /// <summary>
        /// The exact bytes of args[index], as the OS passed them: Mono decodes argv to strings (with
        /// MONO_EXTERNAL_ENCODINGS as fallback for bytes that are not UTF-8), which cannot hold
        /// arbitrary bytes. On Linux /proc/self/cmdline has them; our args are its last entries.
        /// Elsewhere, or when anything does not line up, the UTF-8 encoding of the string.
        /// </summary>
        public static byte[][] RawArguments(string[] args)
        {
            var utf8 = new UTF8Encoding(false);
            var result = new byte[args.Length][];
            for (int i = 0; i < args.Length; i++) result[i] = utf8.GetBytes(args[i]);
            try
            {
                byte[] cmdline = File.ReadAllBytes("/proc/self/cmdline");
                var entries = new List<byte[]>();
                int start = 0;
                for (int i = 0; i < cmdline.Length; i++)
                {
                    if (cmdline[i] != 0) continue;
                    var entry = new byte[i - start];
                    Buffer.BlockCopy(cmdline, start, entry, 0, entry.Length);
                    entries.Add(entry);
                    start = i + 1;
                }
                if (entries.Count < args.Length) return result;
                int offset = entries.Count - args.Length;
                var strict = new UTF8Encoding(false, true);
                Encoding latin1 = Encoding.GetEncoding(28591);
                var raw = new byte[args.Length][];
                for (int i = 0; i < args.Length; i++)
                {
                    byte[] entry = entries[offset + i];
                    string decoded;
                    try { decoded = strict.GetString(entry); }
                    catch (ArgumentException) { decoded = null; } // not UTF-8: Mono used its fallback (Latin-1)
                    if (decoded != args[i] && latin1.GetString(entry) != args[i]) return result; // does not line up
                    raw[i] = entry;
                }
                return raw;
            }
            catch (Exception)
            {
                return result;
            }
        }
    }
}
