import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

/**
 * Forces safepoints in a loop for N seconds (args[0], default 3): a full GC,
 * a stack walk of every thread and a thread dump through JMX each need every
 * Java thread stopped. Prints nothing and exits 0, so that a test can tell a
 * clean run from a crash and read the JVM's own safepoint log afterwards.
 */
public class SafepointLoop {
    public static void main(String[] args) throws InterruptedException {
        long seconds = args.length > 0 ? Long.parseLong(args[0]) : 3;
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        while (System.nanoTime() - deadline < 0) {
            System.gc();
            Thread.getAllStackTraces();
            threads.dumpAllThreads(false, false);
            // Short sleeps keep the loop from pinning a CPU; the safepoints,
            // not the CPU time, are what the test is after.
            Thread.sleep(20);
        }
    }
}
