// stdin and stdout as blocking streams, whether or not they are non-blocking (spec/PROTOCOL.md X-8).
package upperecho;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.concurrent.locks.LockSupport;

/**
 * Raw reads of stdin and writes to stdout that wait out O_NONBLOCK: some tools leave it on a pipe or a
 * terminal that the program shares. A FileInputStream or FileOutputStream throws at EAGAIN, and the stream
 * cannot say how much of a write went out; a FileChannel returns 0 instead. Java cannot poll fd 0 or 1, so a
 * call that moves nothing sleeps and retries, 1 ms at first, doubling up to 16 ms while nothing moves. With
 * blocking descriptors it never sleeps. Real errors throw, with the system's reason as their message.
 * Never interrupt a thread that may be in here: an interrupted FileChannel closes fd 0 or 1 for good.
 */
final class Stdio {
    private static final FileChannel IN = new FileInputStream(FileDescriptor.in).getChannel();
    private static final FileChannel OUT = new FileOutputStream(FileDescriptor.out).getChannel();
    /**
     * Most bytes per write: the channel copies all that remains into a native buffer at every call, which a
     * non-blocking pipe then takes a pipe's capacity of.
     */
    private static final int WRITE_SLICE = 64 * 1024;
    private static final long FIRST_PAUSE_NS = 1_000_000L;
    private static final long LONGEST_PAUSE_NS = 16_000_000L;

    private Stdio() {
    }

    /** Read at most length (at least 1) bytes of stdin into bytes at offset: how many, or -1 at its end. */
    static int read(byte[] bytes, int offset, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.wrap(bytes, offset, length);
        long pause = FIRST_PAUSE_NS;
        while (true) {
            int n = IN.read(buffer); // 0: no input yet, as length is at least 1
            if (n != 0) {
                return n;
            }
            pause = pause(pause);
        }
    }

    /** Write all of bytes[0, length) to stdout, unbuffered. */
    static void write(byte[] bytes, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.wrap(bytes, 0, 0);
        long pause = FIRST_PAUSE_NS;
        while (buffer.position() < length) {
            buffer.limit(Math.min(length, buffer.position() + WRITE_SLICE));
            if (OUT.write(buffer) > 0) {
                pause = FIRST_PAUSE_NS;
            } else { // the pipe is full
                pause = pause(pause);
            }
        }
    }

    /** Sleep for pause (park: no InterruptedException, no new class); the next pause. */
    private static long pause(long pause) {
        LockSupport.parkNanos(pause);
        return Math.min(pause * 2, LONGEST_PAUSE_NS);
    }
}
