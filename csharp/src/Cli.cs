// The `upper-echo` command line (spec sections 5-7), matching the Python
// reference (python/upper_echo/cli.py): same subcommands, flags, defaults and
// exit codes. Usage errors are one `error: ` line on stderr and exit 2.
//
// Console.Out/Console.Error are never used: every byte goes through the raw
// standard streams, so no encoding, no BOM and no locale is involved.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace UpperEcho
{
    sealed class UsageException : Exception
    {
        public UsageException(string message) : base(message) { }
    }

    static class Out
    {
        static readonly object Gate = new object();
        static Stream stdout, stderr;
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false);

        public static Stream Stdout
        {
            get { lock (Gate) { return stdout ?? (stdout = Console.OpenStandardOutput()); } }
        }

        /// <summary>One whole line to stderr, written at once (lines from threads never interleave).</summary>
        public static void Log(string line)
        {
            byte[] bytes = Utf8.GetBytes(line + "\n");
            lock (Gate)
            {
                try
                {
                    if (stderr == null) stderr = Console.OpenStandardError();
                    stderr.Write(bytes, 0, bytes.Length);
                    stderr.Flush();
                }
                catch (Exception) { } // a closed stderr must not take the server down
            }
        }

        public static void Error(string message) { Log("error: " + OneLine(message)); }

        public static void Print(string text)
        {
            byte[] bytes = Utf8.GetBytes(text);
            Stream s = Stdout;
            s.Write(bytes, 0, bytes.Length);
            s.Flush();
        }

        public static string OneLine(string s)
        {
            return (s ?? "").Replace("\r", " ").Replace("\n", " ");
        }
    }

    /// <summary>A minimal argparse: `--flag VALUE`, `--flag=VALUE`, `-h/--help`, `--`, positionals.</summary>
    sealed class ArgParser
    {
        readonly HashSet<string> flags = new HashSet<string>();
        readonly bool positionals;
        public readonly Dictionary<string, string> Values = new Dictionary<string, string>();
        public readonly List<int> PositionalIndices = new List<int>();
        public bool Help;

        public ArgParser(bool positionals, params string[] flags)
        {
            this.positionals = positionals;
            foreach (string f in flags) this.flags.Add(f);
        }

        static bool LooksLikeNegativeNumber(string a)
        {
            double unused;
            return a.Length > 1 && a[0] == '-' && (char.IsDigit(a[1]) || a[1] == '.')
                && double.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out unused);
        }

        static bool IsOption(string a)
        {
            return a.Length > 1 && a[0] == '-' && !LooksLikeNegativeNumber(a);
        }

        public void Parse(string[] args, int start)
        {
            bool onlyPositionals = false;
            for (int i = start; i < args.Length; i++)
            {
                string a = args[i];
                if (onlyPositionals || !IsOption(a))
                {
                    if (!positionals) throw new UsageException("unrecognized arguments: " + a);
                    PositionalIndices.Add(i);
                    continue;
                }
                if (a == "--") { onlyPositionals = true; continue; }
                if (a == "-h" || a == "--help") { Help = true; continue; }
                string name = a, value = null;
                int eq = a.IndexOf('=');
                if (a.StartsWith("--") && eq > 0) { name = a.Substring(0, eq); value = a.Substring(eq + 1); }
                if (!flags.Contains(name)) throw new UsageException("unrecognized arguments: " + a);
                if (value == null)
                {
                    if (i + 1 >= args.Length || IsOption(args[i + 1]))
                        throw new UsageException("argument " + name + ": expected one argument");
                    value = args[++i];
                }
                Values[name] = value;
            }
        }

        public long Int(string name, long defaultValue, long low, long high)
        {
            string text;
            if (!Values.TryGetValue(name, out text)) return defaultValue;
            long value;
            if (!long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value))
                throw new UsageException("argument " + name + ": not a whole number: '" + text + "'");
            if (value < low || value > high)
            {
                string bound = high == long.MaxValue ? "at least " + low : low + "-" + high;
                throw new UsageException("argument " + name + ": " + value + " is out of range (" + bound + ")");
            }
            return value;
        }

        public double Seconds(string name, double defaultValue, bool positive)
        {
            string text;
            if (!Values.TryGetValue(name, out text)) return defaultValue;
            double value;
            if (!double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out value))
                throw new UsageException("argument " + name + ": not a number of seconds: '" + text + "'");
            if (double.IsNaN(value) || double.IsInfinity(value) || value < 0 || (positive && value == 0))
                throw new UsageException("argument " + name + ": " + text + " is out of range (" + (positive ? "above" : "at least") + " 0)");
            return value;
        }
    }

    public static class Program
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
            "  --port PORT          port; 0 takes a free one (default: 7007)\n" +
            "  --idle-timeout S     close a connection that received nothing for S seconds; 0 = never (default: 300)\n" +
            "  --max-connections N  accept and close at once beyond N open connections (default: 1024)\n" +
            "  --drain-timeout S    on SIGTERM/SIGINT, let connections finish for S seconds (default: 5)\n";

        const string ClientUsage =
            "usage: upper-echo client [-h] [--host HOST] [--port PORT] [--timeout S] [MESSAGE ...]\n\n" +
            "Send each MESSAGE plus LF (or stdin when none), half-close, and copy the server's bytes to stdout.\n" +
            "Exit 0 ok, 3 cannot connect, 4 connection broke.\n\n" +
            "options:\n" +
            "  --host HOST  server address or name (default: 127.0.0.1)\n" +
            "  --port PORT  server port (default: 7007)\n" +
            "  --timeout S  bound on connecting and on each wait after half-close (default: 10)\n";

        const string TransformUsage =
            "usage: upper-echo transform [-h] [--chunk-size N]\n\n" +
            "Write U(stdin) to stdout, feeding the transducer in reads of at most --chunk-size bytes.\n\n" +
            "options:\n" +
            "  --chunk-size N  largest read fed to the transducer (default: 65536)\n";

        public const int ExitUsage = 2;

        public static int Main(string[] args)
        {
            AppDomain.CurrentDomain.UnhandledException += (sender, e) =>
            {
                // Last resort: threads catch their own errors; never die with a stack trace on stdout.
                Out.Error("internal error: " + e.ExceptionObject);
                Environment.Exit(1);
            };
            try
            {
                return Run(args);
            }
            catch (UsageException e)
            {
                Out.Error(e.Message);
                return ExitUsage;
            }
        }

        static int Run(string[] args)
        {
            if (args.Length == 0)
                throw new UsageException("the following arguments are required: {server,client,transform}");
            string command = args[0];
            if (command == "-h" || command == "--help") { Out.Print(TopUsage); return 0; }
            switch (command)
            {
                case "server":
                {
                    var p = new ArgParser(false, "--host", "--port", "--idle-timeout", "--max-connections", "--drain-timeout");
                    p.Parse(args, 1);
                    if (p.Help) { Out.Print(ServerUsage); return 0; }
                    var options = new ServerOptions
                    {
                        Host = p.Values.ContainsKey("--host") ? p.Values["--host"] : "127.0.0.1",
                        Port = (int)p.Int("--port", 7007, 0, 65535),
                        IdleTimeout = p.Seconds("--idle-timeout", 300, false),
                        MaxConnections = (int)Math.Min(int.MaxValue, p.Int("--max-connections", 1024, 1, long.MaxValue)),
                        DrainTimeout = p.Seconds("--drain-timeout", 5, false),
                    };
                    return new Server(options).Run();
                }
                case "client":
                {
                    var p = new ArgParser(true, "--host", "--port", "--timeout");
                    p.Parse(args, 1);
                    if (p.Help) { Out.Print(ClientUsage); return 0; }
                    var options = new ClientOptions
                    {
                        Host = p.Values.ContainsKey("--host") ? p.Values["--host"] : "127.0.0.1",
                        Port = (int)p.Int("--port", 7007, 1, 65535),
                        Timeout = p.Seconds("--timeout", 10, true),
                    };
                    var messages = new List<byte[]>();
                    if (p.PositionalIndices.Count > 0)
                    {
                        byte[][] raw = Quirks.RawArguments(args); // the MESSAGE bytes exactly as given
                        foreach (int i in p.PositionalIndices) messages.Add(raw[i]);
                    }
                    return Client.Run(options, messages);
                }
                case "transform":
                {
                    var p = new ArgParser(false, "--chunk-size");
                    p.Parse(args, 1);
                    if (p.Help) { Out.Print(TransformUsage); return 0; }
                    int chunk = (int)Math.Min(int.MaxValue, p.Int("--chunk-size", 65536, 1, long.MaxValue));
                    return RunTransform(chunk);
                }
                default:
                    throw new UsageException("argument command: invalid choice: '" + command + "' (choose from 'server', 'client', 'transform')");
            }
        }

        /// <summary>X-2: U(stdin) to stdout, feeding the transducer reads of at most chunkSize bytes.</summary>
        static int RunTransform(int chunkSize)
        {
            var transducer = new Transducer();
            // "at most N bytes" per read; a buffer above 1 MiB would only waste memory.
            var buffer = new byte[Math.Min(chunkSize, 1 << 20)];
            Stream stdin = Console.OpenStandardInput();
            Stream stdout = Out.Stdout;
            int r;
            while ((r = stdin.Read(buffer, 0, buffer.Length)) > 0)
            {
                int n = transducer.Feed(buffer, 0, r);
                stdout.Write(transducer.Output, 0, n);
                stdout.Flush();
            }
            int m = transducer.Flush();
            stdout.Write(transducer.Output, 0, m);
            stdout.Flush();
            return 0;
        }
    }
}
