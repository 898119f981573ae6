import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

/**
 * Sleeps args[0] milliseconds, then forces safepoints for args[1]
 * milliseconds (full GCs, stack walks, thread dumps), then exits. The sleep
 * lets a test attach its probes before the first safepoint it counts.
 */
public class SafepointsAfter {
    public static void main(String[] args) throws InterruptedException {
        Thread.sleep(Long.parseLong(args[0]));
        long deadline = System.nanoTime() + Long.parseLong(args[1]) * 1_000_000L;
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        while (System.nanoTime() - deadline < 0) {
            System.gc();
            Thread.getAllStackTraces();
            threads.dumpAllThreads(false, false);
            Thread.sleep(10);
        }
    }
}
