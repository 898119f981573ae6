import java.util.ArrayList;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A JVM in a GC spiral: it keeps a live set near the heap limit and keeps
 * replacing it, so every collection finds almost everything alive and frees
 * only a sliver, and the next one follows at once. This is the query of death
 * seen from the JVM: little application progress, most of the wall time stopped.
 *
 * Runs for N seconds (args[0]) or, with 0 or no argument, until killed. Run it
 * with a small -Xmx (64m) so that each collection is short and a test sees many.
 * Prints one summary line at exit.
 */
public class HeapThrash {
    // Small objects: marking and copying cost per object, so a live set of
    // many small arrays makes every collection work hard.
    static final int CHUNK = 1024;

    public static void main(String[] args) {
        long seconds = args.length > 0 ? Long.parseLong(args[0]) : 0;
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        long max = Runtime.getRuntime().maxMemory();
        // Per retained chunk: the array (header + CHUNK bytes) and its slot in the list.
        long perChunk = CHUNK + 16 + 8;
        int target = (int) (max * 0.9 / perChunk);
        ArrayList<byte[]> live = new ArrayList<>(target);
        ThreadLocalRandom rnd = ThreadLocalRandom.current();
        long replaced = 0;
        int shrinks = 0;
        while (seconds == 0 || System.nanoTime() - deadline < 0) {
            try {
                if (live.size() < target) {
                    live.add(new byte[CHUNK]);
                } else {
                    // Replace a random old chunk: the old one becomes garbage
                    // only after it has been promoted, the worst case for a
                    // generational collector.
                    live.set(rnd.nextInt(live.size()), new byte[CHUNK]);
                    replaced++;
                }
            } catch (OutOfMemoryError e) {
                // The heap cannot hold this live set with this collector: give
                // up 5% and keep thrashing rather than die.
                int keep = live.size() * 95 / 100;
                live.subList(keep, live.size()).clear();
                target = keep;
                shrinks++;
            }
        }
        // One last safepoint, so that the safepoint log, whose records each
        // carry the running time before them, accounts for the whole run.
        Thread.getAllStackTraces();
        System.out.printf("live=%dMiB max=%dMiB replaced=%d shrinks=%d%n",
                (long) live.size() * perChunk >> 20, max >> 20, replaced, shrinks);
    }
}
