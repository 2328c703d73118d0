// The platform file: work-arounds for Mono 6.8 specifics, each harmless elsewhere, and the raw
// libc calls (Posix). Argv decoding is not one of them: it is the command
// line's job (Cli.cs).
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
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
                // access(2), not File.Exists: Mono's first path operation creates and deletes a file in /tmp
                // to learn whether the file system is case-sensitive (~5 ms).
                bool ipv6 = Posix.Exists("/proc/net/if_inet6");
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
        /// Ends the process with code now, with _exit(2): nothing is lost, as stdout and stderr are written
        /// with write(2) and never buffered. Not through the runtime's shutdown: returning from Main waits
        /// for every thread, also a background one blocked reading stdin (the client's sender when the
        /// server closed first, C-7), and Mono's Environment.Exit, with the sender still inside a socket
        /// call or a read, once crashed the client with SIGABRT (exit 134 and a crash report on stdout: a CI
        /// run, docker backend, early-close condition).
        /// </summary>
        public static void Exit(int code)
        {
            Posix.Exit(code);
        }
    }

    // Raw libc calls (Linux, through P/Invoke). The server's socket calls, for what Mono's Socket cannot do:
    //
    // - accept(2)'s own peer address. Mono's Socket.Accept learns the peer later, with getpeername(2),
    //   which fails (ENOTCONN) for a connection reset while it waited in the backlog; accept(2) itself
    //   reports the address of every connection it returns (S-6).
    // - accept(2)'s errno: EMFILE and friends are told apart from a connection that died (S-10).
    // - recv(2) and send(2) that never block, and poll(2): a wait that the idle timeout (S-2) bounds, and
    //   that no call blocks in when the drain (S-4) resets the connection from another thread, with no FIN
    //   sent. (A blocked send(2) can be woken only with shutdown(2), which sends a FIN, or a signal.)
    // - SO_LINGER 0 on every reset (S-2, S-3, S-4), and shutdown(2) of the listener, which wakes a
    //   blocked accept and refuses new connections at once (S-4).
    // - sigaction(2), to learn whether SIGHUP was ignored when the server started (S-4).
    //
    // And for every command, because the managed way costs start-up time: read(2) and write(2) on the
    // standard streams (Out), access(2) and _exit(2) (Quirks).
    static unsafe class Posix
    {
        // Linux x86-64 and arm64 constants.
        public const int EINTR = 4, EAGAIN = 11, ENOMEM = 12, ENFILE = 23, EMFILE = 24, ENOBUFS = 105;
        public const int SOL_SOCKET = 1, SO_LINGER = 13;
        public const int IPPROTO_TCP = 6, TCP_NODELAY = 1;
        public const int SHUT_RDWR = 2;
        public const int MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;
        public const int SOCK_CLOEXEC = 0x80000;
        public const int SIGHUP = 1;
        public const short POLLIN = 1, POLLOUT = 4;
        const int AF_INET = 2, AF_INET6 = 10;
        const int F_OK = 0;
        const int SockaddrSize = 128; // sizeof(struct sockaddr_storage)
        const int SigactionSize = 256; // more than sizeof(struct sigaction) (152 with glibc), whose handler comes first
        static readonly IntPtr SIG_IGN = (IntPtr)1;

        [StructLayout(LayoutKind.Sequential)]
        struct Linger { public int OnOff; public int Seconds; }

        [StructLayout(LayoutKind.Sequential)]
        struct PollFd { public int Fd; public short Events; public short Revents; }

        [DllImport("libc", EntryPoint = "accept4", SetLastError = true)]
        static extern int accept4(int fd, byte* address, ref uint length, int flags);

        [DllImport("libc", EntryPoint = "recv", SetLastError = true)]
        static extern IntPtr recv(int fd, byte* buffer, UIntPtr length, int flags);

        [DllImport("libc", EntryPoint = "send", SetLastError = true)]
        static extern IntPtr send(int fd, byte* buffer, UIntPtr length, int flags);

        [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
        static extern int setsockopt(int fd, int level, int name, void* value, uint length);

        [DllImport("libc", EntryPoint = "shutdown", SetLastError = true)]
        static extern int shutdown(int fd, int how);

        [DllImport("libc", EntryPoint = "close", SetLastError = true)]
        static extern int close(int fd);

        [DllImport("libc", EntryPoint = "read", SetLastError = true)]
        static extern IntPtr read(int fd, byte* buffer, UIntPtr count);

        [DllImport("libc", EntryPoint = "write", SetLastError = true)]
        static extern IntPtr write(int fd, byte* buffer, UIntPtr count);

        [DllImport("libc", EntryPoint = "access")]
        static extern int access(string path, int mode);

        [DllImport("libc", EntryPoint = "strerror")]
        static extern IntPtr strerror(int errno);

        [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
        static extern int poll(PollFd* fds, UIntPtr count, int timeoutMs);

        [DllImport("libc", EntryPoint = "_exit")]
        static extern void _exit(int status);

        [DllImport("libc", EntryPoint = "sigaction", SetLastError = true)]
        static extern int sigaction(int signum, byte* action, byte* oldAction);

        static int Errno() { return Marshal.GetLastWin32Error(); }

        /// <summary>accept4(2) with SOCK_CLOEXEC: the new descriptor and the peer as accept reported it,
        /// or -1 and errno.</summary>
        public static int Accept(int listener, out IPEndPoint peer, out int errno)
        {
            byte* address = stackalloc byte[SockaddrSize];
            uint length = SockaddrSize;
            int fd = accept4(listener, address, ref length, SOCK_CLOEXEC);
            errno = fd < 0 ? Errno() : 0;
            peer = fd < 0 ? null : Endpoint(address, length);
            return fd;
        }

        static IPEndPoint Endpoint(byte* a, uint length)
        {
            int family = a[0] | a[1] << 8; // sa_family_t, host order (little-endian here)
            int port = a[2] << 8 | a[3];   // network order
            if (family == AF_INET && length >= 8)
            {
                var bytes = new byte[4];
                for (int k = 0; k < 4; k++) bytes[k] = a[4 + k];
                return new IPEndPoint(new IPAddress(bytes), port);
            }
            if (family == AF_INET6 && length >= 28)
            {
                var bytes = new byte[16];
                for (int k = 0; k < 16; k++) bytes[k] = a[8 + k];
                uint scope = (uint)a[24] | (uint)a[25] << 8 | (uint)a[26] << 16 | (uint)a[27] << 24;
                return new IPEndPoint(new IPAddress(bytes, scope), port);
            }
            return new IPEndPoint(IPAddress.None, 0); // not IP: never on a TCP listener
        }

        /// <summary>Waits up to timeoutMs (-1: for ever) for events on the descriptor, or an error or hang-up:
        /// 0, or the errno of a failed poll(2) (EINTR counts as woken: the caller tries again).</summary>
        public static int Wait(int fd, short events, int timeoutMs)
        {
            PollFd p;
            p.Fd = fd;
            p.Events = events;
            p.Revents = 0;
            if (poll(&p, (UIntPtr)1, timeoutMs) >= 0) return 0;
            int errno = Errno();
            return errno == EINTR ? 0 : errno;
        }

        /// <summary>recv(2) without waiting: bytes read, 0 at end of stream, -1 with errno (EAGAIN: nothing yet).</summary>
        public static int Receive(int fd, byte[] buffer, int offset, int count, out int errno)
        {
            fixed (byte* b = buffer)
            {
                long n = (long)recv(fd, b + offset, (UIntPtr)count, MSG_DONTWAIT);
                errno = n < 0 ? Errno() : 0;
                return (int)n;
            }
        }

        /// <summary>send(2) without waiting and without SIGPIPE: bytes the kernel took, or -1 with errno (EAGAIN: no
        /// room yet).</summary>
        public static int Send(int fd, byte[] buffer, int offset, int count, out int errno)
        {
            fixed (byte* b = buffer)
            {
                long n = (long)send(fd, b + offset, (UIntPtr)count, MSG_DONTWAIT | MSG_NOSIGNAL);
                errno = n < 0 ? Errno() : 0;
                return (int)n;
            }
        }

        /// <summary>read(2) of up to count bytes, again after EINTR: bytes read, 0 at end of file, -1 with errno.
        /// A non-blocking descriptor is read as if it blocked: EAGAIN waits in poll(2) for input.</summary>
        public static int Read(int fd, byte[] buffer, int count, out int errno)
        {
            fixed (byte* b = buffer)
            {
                while (true)
                {
                    long n = (long)read(fd, b, (UIntPtr)count);
                    errno = n < 0 ? Errno() : 0;
                    if (errno == EAGAIN) errno = Wait(fd, POLLIN, -1); // a failed wait fails the read
                    if (errno != 0 && errno != EINTR) return -1;
                    if (n >= 0) return (int)n;
                }
            }
        }

        /// <summary>write(2) of all of data[0, count), again after EINTR and short writes: 0, or the errno that
        /// stopped it (SIGPIPE is ignored under Mono: a closed pipe is EPIPE). A non-blocking descriptor is
        /// written as if it blocked: EAGAIN waits in poll(2) for room.</summary>
        public static int WriteAll(int fd, byte[] data, int count)
        {
            fixed (byte* b = data)
            {
                int offset = 0;
                while (offset < count)
                {
                    long n = (long)write(fd, b + offset, (UIntPtr)(count - offset));
                    if (n >= 0)
                    {
                        offset += (int)n;
                        continue;
                    }
                    int errno = Errno();
                    if (errno == EAGAIN) errno = Wait(fd, POLLOUT, -1); // a failed wait fails the write
                    if (errno != 0 && errno != EINTR) return errno;
                }
                return 0;
            }
        }

        public static void Exit(int code) { _exit(code); }

        public static bool Exists(string path) { return access(path, F_OK) == 0; }

        /// <summary>The C library's text for errno ("Broken pipe").</summary>
        public static string Strerror(int errno)
        {
            return Marshal.PtrToStringAnsi(strerror(errno)) ?? "errno " + errno;
        }

        public static void SetInt(int fd, int level, int name, int value)
        {
            setsockopt(fd, level, name, &value, sizeof(int));
        }

        /// <summary>SO_LINGER 0: the close that follows sends a reset, not a FIN.</summary>
        public static void LingerZero(int fd)
        {
            Linger l;
            l.OnOff = 1;
            l.Seconds = 0;
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, (uint)sizeof(Linger));
        }

        public static void Shutdown(int fd) { shutdown(fd, SHUT_RDWR); }

        public static void Close(int fd) { close(fd); }

        /// <summary>Whether the signal's disposition is SIG_IGN (as nohup leaves SIGHUP); sigaction(2) without
        /// changing it.</summary>
        public static bool IsIgnored(int signum)
        {
            byte* old = stackalloc byte[SigactionSize];
            return sigaction(signum, null, old) == 0 && *(IntPtr*)old == SIG_IGN;
        }

        public static bool IsResourceError(int errno)
        {
            return errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
        }

        /// <summary>A one-line description of errno, without the runtime's exception machinery.</summary>
        public static string Describe(int errno)
        {
            switch (errno)
            {
                case EMFILE: return "Too many open files (EMFILE)";
                case ENFILE: return "Too many open files in system (ENFILE)";
                case ENOBUFS: return "No buffer space available (ENOBUFS)";
                case ENOMEM: return "Cannot allocate memory (ENOMEM)";
                default: return "errno " + errno;
            }
        }
    }
}
