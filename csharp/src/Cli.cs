// The `upper-echo` command line (spec/PROTOCOL.md sections 5-7): argv
// decoding, the option table of spec/cli.toml, option parsing, help, the
// transform command (X-2), and the mapping of every outcome to an exit code.
// Server and Client never choose an exit status for a usage error or a
// failure to listen: they throw, and Main maps.
//
// The language (X-3, X-4, X-5), exactly: flags in full (no abbreviations), as
// `--flag VALUE` or `--flag=VALUE`; an empty or missing VALUE is a usage
// error; the last of a repeated flag counts; `--` ends the flags only where
// operands may follow (the client's MESSAGEs); integers are `[0-9]+`, seconds
// `[0-9]+(.[0-9]{1,3})?`, each within its range of the table. A usage error
// is one `error: ` line on stderr, nothing on stdout, exit 2 (X-1).
//
// System.Console is never used: every byte goes through file descriptors 0, 1
// and 2 (Out), so no encoding, no BOM and no locale is involved.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace UpperEcho
{
    /// <summary>Exit statuses (S-9, C-6, X-1, X-6).</summary>
    static class ExitCode
    {
        public const int Ok = 0;
        public const int Failure = 1;         // cannot listen (S-9), write stdout (X-6), read stdin (C-8)
        public const int Usage = 2;           // X-1
        public const int CannotConnect = 3;   // C-6
        public const int ConnectionBroke = 4; // C-6
    }

    /// <summary>A usage error (X-1): exit 2.</summary>
    sealed class UsageException : Exception
    {
        public UsageException(string message) : base(message) { }
    }

    /// <summary>Writing to stdout failed (X-6): the command stops and exits 1.</summary>
    sealed class StdoutException : Exception
    {
        public StdoutException(string reason) : base("cannot write to stdout: " + reason) { }
    }

    /// <summary>The standard streams as file descriptors 0, 1 and 2, through read(2) and write(2) (Posix):
    /// System.Console's class constructor (encodings, terminal checks, TextReader and TextWriter for all
    /// three) cost ~5 ms of every client start, for streams this program never uses.</summary>
    static class Out
    {
        const int StdinFd = 0, StdoutFd = 1, StderrFd = 2;
        static readonly object Gate = new object();
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false);

        /// <summary>One whole line to stderr, written at once (lines from threads never interleave).</summary>
        public static void Log(string line)
        {
            byte[] bytes = Utf8.GetBytes(line + "\n");
            LogLines(bytes, bytes.Length);
        }

        /// <summary>Whole lines, bytes[0, count), to stderr, written at once.</summary>
        public static void LogLines(byte[] bytes, int count)
        {
            // A failure is ignored: a closed stderr must not take the server down. A full non-blocking one is
            // waited on, as for stdout (X-8; WriteAll).
            lock (Gate) Posix.WriteAll(StderrFd, bytes, count);
        }

        public static void Error(string message) { Log("error: " + OneLine(message)); }

        /// <summary>data[0, count) to stdout, unbuffered; a failure is a StdoutException (X-6).</summary>
        public static void Write(byte[] data, int count)
        {
            int errno = Posix.WriteAll(StdoutFd, data, count);
            if (errno != 0) throw new StdoutException(Posix.Strerror(errno));
        }

        public static void Print(string text)
        {
            byte[] bytes = Utf8.GetBytes(text);
            Write(bytes, bytes.Length);
        }

        /// <summary>Up to count bytes of stdin into buffer: the number read, 0 at end of input, -1 with errno.</summary>
        public static int ReadStdin(byte[] buffer, int count, out int errno)
        {
            return Posix.Read(StdinFd, buffer, count, out errno);
        }

        public static string OneLine(string s)
        {
            return (s ?? "").Replace("\r", " ").Replace("\n", " ");
        }
    }

    /// <summary>The value types of spec/cli.toml [types] (X-4, X-5).</summary>
    enum ValueType { Integer, Seconds, Host }

    /// <summary>One row of spec/cli.toml [commands.*.options]. Seconds are held in milliseconds.</summary>
    sealed class Option
    {
        public readonly string Flag;
        public readonly ValueType Type;
        public readonly long Min, Max;
        public readonly string Default;

        Option(string flag, ValueType type, long min, long max, string defaultValue)
        {
            Flag = flag;
            Type = type;
            Min = min;
            Max = max;
            Default = defaultValue;
        }

        public static Option Host(string flag, string defaultValue)
        {
            return new Option(flag, ValueType.Host, 0, 0, defaultValue);
        }

        public static Option Integer(string flag, long min, long max, string defaultValue)
        {
            return new Option(flag, ValueType.Integer, min, max, defaultValue);
        }

        /// <summary>Bounds written as in the table, in seconds.</summary>
        public static Option Seconds(string flag, string min, string max, string defaultValue)
        {
            return new Option(flag, ValueType.Seconds, Cli.ParseMilliseconds(min), Cli.ParseMilliseconds(max), defaultValue);
        }
    }

    /// <summary>One subcommand of spec/cli.toml [commands]: its options, whether it takes operands, its help.</summary>
    sealed class Command
    {
        public readonly string Name;
        public readonly bool TakesOperands;
        public readonly string Usage;
        readonly Option[] options;

        public Command(string name, bool takesOperands, string usage, params Option[] options)
        {
            Name = name;
            TakesOperands = takesOperands;
            Usage = usage;
            this.options = options;
        }

        public Option Find(string flag)
        {
            foreach (Option o in options)
                if (o.Flag == flag) return o;
            return null;
        }
    }

    /// <summary>A parsed command line: the raw value of each flag given (the last one counts), the argv
    /// indices of the operands, and whether help was asked for. Values are converted when read.</summary>
    sealed class ParsedArgs
    {
        readonly Command command;
        readonly Dictionary<string, string> values;
        public readonly int[] OperandIndices;
        public readonly bool Help;

        public ParsedArgs(Command command, Dictionary<string, string> values, int[] operandIndices, bool help)
        {
            this.command = command;
            this.values = values;
            OperandIndices = operandIndices;
            Help = help;
        }

        Option Get(string flag, ValueType type)
        {
            Option o = command.Find(flag);
            if (o == null || o.Type != type) throw new ArgumentException("no " + type + " option " + flag + " in " + command.Name);
            return o;
        }

        string Raw(Option o)
        {
            string text;
            return values.TryGetValue(o.Flag, out text) ? text : o.Default;
        }

        /// <summary>X-5: printable ASCII without spaces, not empty, no zone index, brackets only around an IPv6
        /// address (then without them), and with a ':' an IPv6 address, never a name.</summary>
        public string Host(string flag)
        {
            Option o = Get(flag, ValueType.Host);
            string text = Raw(o);
            if (text.Length == 0) throw new UsageException("argument " + flag + ": an empty host is not an address");
            foreach (char c in text)
            {
                // Never resolved: some resolvers map other scripts' digits and dots to ASCII ones (IDNA), others do not.
                if (c < '!' || c > '~')
                    throw new UsageException("argument " + flag + ": a host is printable ASCII without spaces, not U+"
                                             + ((int)c).ToString("X4", CultureInfo.InvariantCulture) + ": '" + text + "'");
            }
            if (text[0] == '[' && text[text.Length - 1] == ']' && text.Length > 2)
            {
                string inner = text.Substring(1, text.Length - 2);
                if (HostText.Ipv6(inner) != null) return inner;
                throw new UsageException("argument " + flag + ": brackets hold an IPv6 address only: '" + text + "'");
            }
            if (text.IndexOf('%') >= 0)
                throw new UsageException("argument " + flag + ": no zone index: '" + text + "'");
            if (text.IndexOf('[') >= 0 || text.IndexOf(']') >= 0)
                throw new UsageException("argument " + flag + ": brackets hold an IPv6 address only: '" + text + "'");
            if (text.IndexOf(':') >= 0 && HostText.Ipv6(text) == null)
                throw new UsageException("argument " + flag + ": '" + text
                                         + "' is not an IPv6 address (RFC 4291 text form, an IPv4 part in dotted decimal)");
            if (HostText.Ipv4Like(text) && HostText.Ipv4(text) == null)
                throw new UsageException("argument " + flag + ": '" + text
                                         + "' is not an IPv4 address in dotted decimal (four numbers 0-255, no leading zeros)");
            return text;
        }

        /// <summary>X-4: `[0-9]+` within the table's range.</summary>
        public long Integer(string flag)
        {
            Option o = Get(flag, ValueType.Integer);
            string text = Raw(o);
            long value;
            if (!Cli.TryParseInteger(text, out value))
                throw new UsageException("argument " + flag + ": not a whole number in ASCII digits: '" + text + "'");
            if (value < o.Min || value > o.Max)
                throw new UsageException("argument " + flag + ": " + text + " is out of range (" + o.Min + "-" + o.Max + ")");
            return value;
        }

        /// <summary>X-4: `[0-9]+(.[0-9]{1,3})?` seconds within the table's range, as milliseconds.</summary>
        public int Milliseconds(string flag)
        {
            Option o = Get(flag, ValueType.Seconds);
            string text = Raw(o);
            long ms;
            if (!Cli.TryParseMilliseconds(text, out ms))
                throw new UsageException("argument " + flag + ": not a number of seconds (digits, at most 3 decimals): '" + text + "'");
            if (ms < o.Min || ms > o.Max)
                throw new UsageException("argument " + flag + ": " + text + " is out of range ("
                                         + Cli.FormatSeconds(o.Min) + "-" + Cli.FormatSeconds(o.Max) + " seconds)");
            return (int)ms; // the table's largest, 1000000 s, is 1e9 ms
        }
    }

    /// <summary>The address forms of X-5 (spec/cli.toml [types.host]), read by hand: Mono's IPAddress.TryParse takes
    /// more than the C library does (`::ffff:127.0.0.01`, `::ffff:1.2.3`).</summary>
    static class HostText
    {
        /// <summary>The address a host that passed ParsedArgs.Host stands for, or null for a name to resolve.</summary>
        public static IPAddress Literal(string host)
        {
            byte[] bytes = host.IndexOf(':') >= 0 ? Ipv6(host) : Ipv4(host);
            return bytes == null ? null : new IPAddress(bytes);
        }

        /// <summary>cli.toml [types.host] ipv4_like: no ':', and the last part (after one trailing dot) is
        /// digits or starts with 0x.</summary>
        public static bool Ipv4Like(string text)
        {
            if (text.IndexOf(':') >= 0) return false;
            int end = text.EndsWith(".", StringComparison.Ordinal) ? text.Length - 1 : text.Length;
            int start = end == 0 ? 0 : text.LastIndexOf('.', end - 1) + 1;
            if (start >= end) return false;
            if (end - start >= 2 && text[start] == '0' && (text[start + 1] == 'x' || text[start + 1] == 'X')) return true;
            for (int i = start; i < end; i++)
                if (!Cli.IsDigit(text[i])) return false;
            return true;
        }

        /// <summary>cli.toml [types.host] ipv4: four numbers 0-255 joined by dots, no leading zeros. Its 4 bytes, or null.</summary>
        public static byte[] Ipv4(string text)
        {
            string[] parts = text.Split('.');
            if (parts.Length != 4) return null;
            var bytes = new byte[4];
            for (int k = 0; k < 4; k++)
            {
                string part = parts[k];
                if (part.Length == 0 || part.Length > 3 || (part.Length > 1 && part[0] == '0')) return null;
                int value = 0;
                foreach (char c in part)
                {
                    if (!Cli.IsDigit(c)) return null;
                    value = value * 10 + (c - '0');
                }
                if (value > 255) return null;
                bytes[k] = (byte)value;
            }
            return bytes;
        }

        /// <summary>RFC 4291's text form, exactly what glibc's inet_pton(AF_INET6) takes: eight groups of 1-4 hex
        /// digits joined by ':', at most one "::" standing for one or more zero groups, and in place of the last
        /// two groups possibly an IPv4 address in dotted decimal (Ipv4). Its 16 bytes, or null.</summary>
        public static byte[] Ipv6(string text)
        {
            int gap = text.IndexOf("::", StringComparison.Ordinal);
            if (gap >= 0 && text.IndexOf("::", gap + 1, StringComparison.Ordinal) >= 0) return null; // also ":::"
            var head = new List<byte>(16);
            var tail = new List<byte>(16);
            if (gap < 0)
                return Groups(text, true, tail) && tail.Count == 16 ? tail.ToArray() : null;
            // "::" is at least one zero group: 14 bytes around it at most.
            if (!Groups(text.Substring(0, gap), false, head) || !Groups(text.Substring(gap + 2), true, tail)
                || head.Count + tail.Count > 14)
                return null;
            var bytes = new byte[16];
            head.CopyTo(bytes, 0);
            tail.CopyTo(bytes, 16 - tail.Count);
            return bytes;
        }

        /// <summary>The bytes of ':'-separated groups (none when text is empty) onto bytes; the last group may be
        /// an IPv4 address when ipv4Last (an IPv4 part ends the address). False when text is not such groups.</summary>
        static bool Groups(string text, bool ipv4Last, List<byte> bytes)
        {
            if (text.Length == 0) return true;
            string[] groups = text.Split(':');
            for (int k = 0; k < groups.Length; k++)
            {
                string g = groups[k];
                if (ipv4Last && k == groups.Length - 1 && g.IndexOf('.') >= 0)
                {
                    byte[] v4 = Ipv4(g);
                    if (v4 == null) return false;
                    bytes.AddRange(v4);
                    break;
                }
                if (g.Length == 0 || g.Length > 4) return false;
                int value = 0;
                foreach (char c in g)
                {
                    int digit = HexDigit(c);
                    if (digit < 0) return false;
                    value = value << 4 | digit;
                }
                bytes.Add((byte)(value >> 8));
                bytes.Add((byte)value);
            }
            return bytes.Count <= 16;
        }

        /// <summary>An ASCII hex digit's value, or -1.</summary>
        static int HexDigit(char c)
        {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        }
    }

    sealed class TransformOptions
    {
        public readonly int ChunkSize;

        public TransformOptions(int chunkSize) { ChunkSize = chunkSize; }
    }

    public static class Cli
    {
        const string TopUsage =
            "usage: upper-echo [-h] {server,client,transform} ...\n\n" +
            "Uppercase echo over TCP: the C# implementation of spec/PROTOCOL.md.\n\n" +
            "subcommands:\n" +
            "  server     serve the uppercase echo protocol\n" +
            "  client     send MESSAGEs or stdin, print the reply\n" +
            "  transform  apply U to stdin without sockets\n";

        const string ServerUsage =
            "usage: upper-echo server [-h] [--host HOST] [--port PORT] [--idle-timeout S] [--max-connections N] [--drain-timeout S]\n\n" +
            "Serve U over TCP. Prints 'listening on ADDR:PORT' when ready.\n\n" +
            "options:\n" +
            "  --host HOST          address or name to listen on (default: 127.0.0.1)\n" +
            "  --port PORT          port, 0-65535; 0 takes a free one (default: 7007)\n" +
            "  --idle-timeout S     close a connection that received nothing for S seconds; 0 = never (default: 300)\n" +
            "  --max-connections N  accept and close at once beyond N open connections, 1-1000000 (default: 1024)\n" +
            "  --drain-timeout S    on SIGTERM/SIGINT/SIGHUP, let connections finish for S seconds (default: 5)\n\n" +
            "Seconds are 0-1000000, to the millisecond (e.g. 0.5).\n";

        const string ClientUsage =
            "usage: upper-echo client [-h] [--host HOST] [--port PORT] [--timeout S] [--] [MESSAGE ...]\n\n" +
            "Send each MESSAGE plus LF (or stdin when none), half-close, and copy the server's bytes to stdout.\n" +
            "Exit 0 ok, 1 cannot write stdout or read stdin, 2 usage error, 3 cannot connect, 4 connection broke.\n\n" +
            "options:\n" +
            "  --host HOST  server address or name (default: 127.0.0.1)\n" +
            "  --port PORT  server port, 1-65535 (default: 7007)\n" +
            "  --timeout S  bound on connecting and on each wait after half-close, 0.001-1000000 (default: 10)\n" +
            "  --           what follows is MESSAGEs, also when it starts with '-'\n";

        const string TransformUsage =
            "usage: upper-echo transform [-h] [--chunk-size N]\n\n" +
            "Write U(stdin) to stdout, feeding the transducer in reads of at most --chunk-size bytes.\n\n" +
            "options:\n" +
            "  --chunk-size N  largest read fed to the transducer, 1-16777216 (default: 65536)\n";

        // spec/cli.toml [commands], row for row.
        static readonly Command ServerCommand = new Command("server", false, ServerUsage,
            Option.Host("--host", "127.0.0.1"),
            Option.Integer("--port", 0, 65535, "7007"),
            Option.Seconds("--idle-timeout", "0", "1000000", "300"),
            Option.Integer("--max-connections", 1, 1000000, "1024"),
            Option.Seconds("--drain-timeout", "0", "1000000", "5"));

        static readonly Command ClientCommand = new Command("client", true, ClientUsage,
            Option.Host("--host", "127.0.0.1"),
            Option.Integer("--port", 1, 65535, "7007"),
            Option.Seconds("--timeout", "0.001", "1000000", "10"));

        static readonly Command TransformCommand = new Command("transform", false, TransformUsage,
            Option.Integer("--chunk-size", 1, 16777216, "65536"));

        static readonly Command[] Commands = { ServerCommand, ClientCommand, TransformCommand };

        public static int Main(string[] args)
        {
            AppDomain.CurrentDomain.UnhandledException += (sender, e) =>
            {
                // Last resort: threads catch their own errors; never die with a stack trace on stdout.
                Out.Error("internal error: " + e.ExceptionObject);
                Quirks.Exit(ExitCode.Failure);
            };
            int code;
            try
            {
                code = Run(args);
            }
            catch (UsageException e)
            {
                Out.Error(e.Message);
                code = ExitCode.Usage;
            }
            catch (CannotListenException e)
            {
                Out.Error(e.Message);
                code = ExitCode.Failure; // S-9
            }
            catch (StdoutException e)
            {
                Out.Error(e.Message);
                code = ExitCode.Failure; // X-6
            }
            Quirks.Exit(code);
            return code;
        }

        static int Run(string[] args)
        {
            if (args.Length == 0)
                throw new UsageException("the following arguments are required: {server,client,transform}");
            if (args[0] == "-h" || args[0] == "--help")
            {
                Out.Print(TopUsage);
                return ExitCode.Ok;
            }
            Command command = null;
            foreach (Command c in Commands)
                if (c.Name == args[0]) command = c;
            if (command == null)
                throw new UsageException("argument command: invalid choice: '" + args[0] + "' (choose from 'server', 'client', 'transform')");
            ParsedArgs p = Parse(command, args);
            if (p.Help)
            {
                Out.Print(command.Usage);
                return ExitCode.Ok;
            }
            if (command == ServerCommand) return RunServer(p);
            if (command == ClientCommand)
            {
                var options = new ClientOptions(p.Host("--host"), (int)p.Integer("--port"), p.Milliseconds("--timeout"));
                var messages = new List<byte[]>();
                if (p.OperandIndices.Length > 0)
                {
                    byte[][] raw = RawArguments(args); // the MESSAGE bytes exactly as given
                    foreach (int i in p.OperandIndices) messages.Add(raw[i]);
                }
                return Client.Run(options, messages);
            }
            return Transform(new TransformOptions((int)p.Integer("--chunk-size")));
        }

        /// <summary>Its own method, never inlined: compiling Run then does not load Server's field types, and
        /// with them System.Core (HashSet), at every client start.</summary>
        [MethodImpl(MethodImplOptions.NoInlining)]
        static int RunServer(ParsedArgs p)
        {
            var options = new ServerOptions(p.Host("--host"), (int)p.Integer("--port"), p.Milliseconds("--idle-timeout"),
                                            (int)p.Integer("--max-connections"), p.Milliseconds("--drain-timeout"));
            new Server(options).Run();
            return ExitCode.Ok;
        }

        /// <summary>argv[1..] against the command's table (X-3), left to right. A missing or malformed
        /// value is an error at once; an unknown flag or operand only at the end, so that -h/--help
        /// anywhere wins over it; -h/--help ends the parsing.</summary>
        static ParsedArgs Parse(Command command, string[] args)
        {
            var values = new Dictionary<string, string>();
            var operands = new List<int>();
            bool onlyOperands = false;
            UsageException unrecognized = null;
            for (int i = 1; i < args.Length; i++)
            {
                string a = args[i];
                if (onlyOperands || !LooksLikeFlag(a))
                {
                    if (command.TakesOperands) operands.Add(i);
                    else unrecognized = unrecognized ?? new UsageException("unrecognized arguments: " + a);
                    continue;
                }
                if (a == "--")
                {
                    // X-3: only where operands may follow.
                    if (command.TakesOperands) onlyOperands = true;
                    else unrecognized = unrecognized ?? new UsageException("unrecognized arguments: -- (" + command.Name + " takes no operands)");
                    continue;
                }
                if (a == "-h" || a == "--help")
                    return new ParsedArgs(command, values, operands.ToArray(), true);
                int eq = a.IndexOf('=');
                string flag = a.StartsWith("--", StringComparison.Ordinal) && eq > 0 ? a.Substring(0, eq) : a;
                Option option = command.Find(flag); // exact names only: no abbreviations (X-3)
                if (option == null)
                {
                    unrecognized = unrecognized ?? new UsageException("unrecognized arguments: " + a);
                    continue;
                }
                string value;
                if (flag.Length < a.Length)
                {
                    value = a.Substring(eq + 1);
                }
                else
                {
                    if (i + 1 >= args.Length || LooksLikeFlag(args[i + 1]))
                        throw new UsageException("argument " + flag + ": expected one argument");
                    value = args[++i];
                }
                if (value.Length == 0) throw new UsageException("argument " + flag + ": expected a value, got an empty one");
                Check(command, option, value); // every occurrence is checked ...
                values[flag] = value; // ... and the last one counts (X-3)
            }
            if (unrecognized != null) throw unrecognized;
            return new ParsedArgs(command, values, operands.ToArray(), false);
        }

        /// <summary>Throws the usage error of a malformed or out-of-range value, as reading it would.</summary>
        static void Check(Command command, Option option, string value)
        {
            var one = new ParsedArgs(command, new Dictionary<string, string> { { option.Flag, value } }, new int[0], false);
            if (option.Type == ValueType.Host) one.Host(option.Flag);
            else if (option.Type == ValueType.Integer) one.Integer(option.Flag);
            else one.Milliseconds(option.Flag);
        }

        /// <summary>A flag, `--`, or `-h`: starts with '-' and is not "-" alone. `-1` is a flag too, never a
        /// value or an operand (X-3).</summary>
        static bool LooksLikeFlag(string a)
        {
            return a.Length > 1 && a[0] == '-';
        }

        internal static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

        /// <summary>X-4 integer: `[0-9]+` (leading zeros allowed); values too large for a long saturate.</summary>
        internal static bool TryParseInteger(string text, out long value)
        {
            value = 0;
            if (text.Length == 0) return false;
            foreach (char c in text)
            {
                if (!IsDigit(c)) return false;
                value = value > (long.MaxValue - 9) / 10 ? long.MaxValue : value * 10 + (c - '0');
            }
            return true;
        }

        /// <summary>X-4 seconds: `[0-9]+(.[0-9]{1,3})?`, as whole milliseconds (saturating).</summary>
        internal static bool TryParseMilliseconds(string text, out long ms)
        {
            ms = 0;
            int dot = text.IndexOf('.');
            string whole = dot < 0 ? text : text.Substring(0, dot);
            string decimals = dot < 0 ? "0" : text.Substring(dot + 1);
            long seconds, fraction;
            if (decimals.Length < 1 || decimals.Length > 3) return false;
            if (!TryParseInteger(whole, out seconds) || !TryParseInteger(decimals, out fraction)) return false;
            for (int k = decimals.Length; k < 3; k++) fraction *= 10; // "0.5" is 500 ms
            ms = seconds > (long.MaxValue - 999) / 1000 ? long.MaxValue : seconds * 1000 + fraction;
            return true;
        }

        internal static long ParseMilliseconds(string text)
        {
            long ms;
            if (!TryParseMilliseconds(text, out ms)) throw new ArgumentException("not seconds: " + text);
            return ms;
        }

        internal static string FormatSeconds(long ms)
        {
            return (ms / 1000m).ToString("0.###", CultureInfo.InvariantCulture);
        }

        /// <summary>X-2: U(stdin) to stdout, feeding the transducer reads of at most ChunkSize bytes.</summary>
        static int Transform(TransformOptions options)
        {
            var transducer = new Transducer();
            // "at most N bytes" per read; a buffer above 1 MiB would only waste memory.
            var buffer = new byte[Math.Min(options.ChunkSize, 1 << 20)];
            while (true)
            {
                int errno;
                int r = Out.ReadStdin(buffer, buffer.Length, out errno);
                if (r < 0)
                {
                    Out.Error("cannot read stdin: " + Posix.Strerror(errno));
                    return ExitCode.Failure;
                }
                if (r == 0) break;
                int n = transducer.Feed(buffer, 0, r);
                Out.Write(transducer.Output, n); // X-6: a failure stops here, exit 1
            }
            int m = transducer.Flush();
            Out.Write(transducer.Output, m);
            return ExitCode.Ok;
        }

        static bool AllAscii(string[] args)
        {
            foreach (string a in args)
                foreach (char c in a)
                    if (c > 0x7F) return false;
            return true;
        }

        /// <summary>
        /// argv as bytes: the exact bytes of each argument, as the OS passed them. Mono decodes argv to
        /// strings (with MONO_EXTERNAL_ENCODINGS, set by bin/upper-echo, as fallback for bytes that are
        /// not UTF-8), which cannot hold arbitrary bytes. On Linux /proc/self/cmdline has them; our args
        /// are its last entries. Elsewhere, or when anything does not line up, the UTF-8 encoding of
        /// each string.
        /// </summary>
        static byte[][] RawArguments(string[] args)
        {
            var utf8 = new UTF8Encoding(false);
            var result = new byte[args.Length][];
            for (int i = 0; i < args.Length; i++) result[i] = utf8.GetBytes(args[i]);
            // Mono makes a character above U+007F of every byte it cannot decode, so all-ASCII strings are
            // the bytes given: the usual case skips reading /proc (~7 ms of a client start).
            if (AllAscii(args)) return result;
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
