/**
 * A healthy busy JVM: a few threads of CPU work with modest, short-lived
 * allocation and a small live set. Its collections are rare, young and
 * short, so almost none of its wall time is spent stopped: the baseline a
 * thrash detector must not fire on. Args: seconds (default 5), threads
 * (default 2). Prints nothing.
 */
public class Busy {
    static volatile long sink;

    public static void main(String[] args) throws InterruptedException {
        long seconds = args.length > 0 ? Long.parseLong(args[0]) : 5;
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        Thread[] workers = new Thread[n];
        for (int i = 0; i < n; i++) {
            workers[i] = new Thread(() -> work(deadline), "busy-" + i);
            workers[i].start();
        }
        for (Thread w : workers) {
            w.join();
        }
        // One last safepoint, so that the safepoint log, whose records each
        // carry the running time before them, accounts for the whole run.
        Thread.getAllStackTraces();
    }

    static void work(long deadline) {
        // The live set: a small ring of recent results.
        long[][] ring = new long[256][];
        long acc = 0;
        int i = 0;
        while (System.nanoTime() - deadline < 0) {
            // CPU work on a fresh, short-lived array: modest allocation.
            long[] a = new long[64];
            for (int j = 0; j < a.length; j++) {
                acc = acc * 6364136223846793005L + 1442695040888963407L;
                a[j] = acc ^ (acc >>> 29);
            }
            for (int r = 0; r < 5000; r++) {
                acc += Long.rotateLeft(acc, 7) ^ a[r & 63];
            }
            if ((i & 15) == 0) {
                ring[(i >>> 4) & 255] = a;
            }
            i++;
        }
        sink = acc + ring.length;
    }
}
