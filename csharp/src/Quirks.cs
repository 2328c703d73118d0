// Work-arounds for Mono 6.8 specifics, each harmless elsewhere. Argv decoding is
// not one of them: it is the command line's job (Cli.cs).
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Reflection;
#if MONO
using Mono.Unix.Native;
#endif

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
        /// Plain SO_REUSEADDR (a restart may rebind over TIME_WAIT). Mono's ReuseAddress socket option
        /// also sets SO_REUSEPORT, which would let two servers share a port instead of the second one
        /// failing with exit 1 (S-9); so on Mono the option is set with setsockopt(2) itself.
        /// </summary>
        public static void SetReuseAddress(Socket socket)
        {
#if MONO
            Syscall.setsockopt((int)socket.Handle, UnixSocketProtocol.SOL_SOCKET, UnixSocketOptionName.SO_REUSEADDR, 1);
#else
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
#endif
        }

        /// <summary>
        /// Ends the process with code now. Returning from Main would make Mono wait for every thread,
        /// also a background one blocked reading stdin (the client's sender when the server closed
        /// first, C-7); stdout and stderr are unbuffered and already flushed.
        /// </summary>
        public static void Exit(int code)
        {
            Environment.Exit(code);
        }
    }
}
