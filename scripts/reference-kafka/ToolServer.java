import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.utils.internals.Exit;

/**
 * Runs Kafka's command-line tools one after another in one JVM (scripts/reference_kafka.py's
 * run_tool): a tool run costs its own work instead of a JVM start, class loading and warm-up each.
 *
 * <p>Each request is one line on stdin: base64 fields separated by spaces (main class, stdin file or
 * empty, stdout file, stderr file, then the tool's arguments). The tool's main runs on a thread of
 * its own thread group with System.in, System.out and System.err bound to those files, and the
 * answer is one line on the JVM's own stdout: {@code DONE <exit code> <retire>}. The exit code is
 * the one a JVM of its own would end with: the first Exit.exit/halt code, else 1 when main threw
 * (printed as the JVM prints it), else 0 once the non-daemon threads it started have ended; the
 * shutdown hooks it added (through Exit or Runtime.addShutdownHook) run at its end, as at a JVM's
 * exit. Admin clients it left open are then closed (an exit would have closed their sockets);
 * {@code retire} is 1 when a thread the tool started is still alive after that (what an exit would
 * have killed): this JVM then ends after answering and the caller starts a fresh one. A tool
 * calling System.exit itself ends this JVM with its code, which the caller takes as the tool's.
 */
public final class ToolServer {
    /** Thrown out of Exit.exit/halt: unwinds the tool's thread, which a JVM's exit never resumes. */
    static final class ExitError extends Error {
        ExitError(int code) {
            super("Exit.exit(" + code + ")", null, false, false);
        }
    }

    /** The stream System.out (or err) writes to: the running tool's file, or nowhere in between. */
    static final class Switch extends OutputStream {
        private volatile OutputStream target;

        void bind(OutputStream out) {
            target = out;
        }

        private OutputStream live() {
            OutputStream t = target;
            // A JVM's exit never returns to the thread calling it: nothing it writes after shows.
            return t == null || Thread.currentThread() == exitThread ? null : t;
        }

        @Override
        public void write(int b) throws IOException {
            OutputStream t = live();
            if (t != null) {
                t.write(b);
            }
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            OutputStream t = live();
            if (t != null) {
                t.write(b, off, len);
            }
        }

        @Override
        public void flush() throws IOException {
            OutputStream t = target;
            if (t != null) {
                t.flush();
            }
        }
    }

    static final Object LOCK = new Object();
    static volatile Thread exitThread;
    static Integer exitCode;  // guarded by LOCK
    static boolean halted;  // guarded by LOCK
    static boolean toolEnded;  // guarded by LOCK

    static void exited(int code, boolean halt) {
        synchronized (LOCK) {
            if (exitCode == null) {
                exitCode = code;
                halted = halt;
                exitThread = Thread.currentThread();
            }
            LOCK.notifyAll();
        }
        throw new ExitError(code);
    }

    public static void main(String[] argv) throws Exception {
        PrintStream control = new PrintStream(new FileOutputStream(java.io.FileDescriptor.out), true,
                StandardCharsets.UTF_8);
        BufferedReader requests = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Switch out = new Switch();
        Switch err = new Switch();
        System.setOut(new PrintStream(out, true));
        System.setErr(new PrintStream(err, true));
        Exit.setExitProcedure((code, message) -> exited(code, false));
        Exit.setHaltProcedure((code, message) -> exited(code, true));
        control.println("READY");
        String line;
        int n = 0;
        while ((line = requests.readLine()) != null) {
            String[] fields = line.split(" ", -1);
            String[] decoded = new String[fields.length];
            for (int i = 0; i < fields.length; i++) {
                decoded[i] = new String(Base64.getDecoder().decode(fields[i]), StandardCharsets.UTF_8);
            }
            String[] args = new String[decoded.length - 4];
            System.arraycopy(decoded, 4, args, 0, args.length);
            boolean retire;
            int code;
            try (InputStream in = decoded[1].isEmpty() ? new ByteArrayInputStream(new byte[0])
                    : new FileInputStream(decoded[1]);
                 FileOutputStream stdout = new FileOutputStream(decoded[2]);
                 FileOutputStream stderr = new FileOutputStream(decoded[3])) {
                System.setIn(in);
                out.bind(stdout);
                err.bind(stderr);
                Properties properties = (Properties) System.getProperties().clone();
                ThreadGroup group = new ThreadGroup("tool-" + ++n) {
                    @Override
                    public void uncaughtException(Thread t, Throwable e) {
                        if (!(e instanceof ExitError)) {  // "Exception in thread ..." and the trace, on System.err
                            super.uncaughtException(t, e);
                        }
                    }
                };
                code = run(decoded[0], args, group);
                System.out.flush();
                System.err.flush();
                out.bind(null);
                err.bind(null);
                System.setProperties(properties);
                retire = !reclaim(group);
            }
            control.println("DONE " + code + " " + (retire ? 1 : 0));
            if (retire) {
                break;
            }
        }
        control.flush();
        Runtime.getRuntime().halt(0);  // nothing of a tool may outlive its run (its threads, its JVM hooks)
    }

    /** One tool run, its threads in ``group``: the exit code its own JVM would end with. */
    static int run(String mainClass, String[] args, ThreadGroup group) throws Exception {
        synchronized (LOCK) {
            exitCode = null;
            halted = false;
            exitThread = null;
            toolEnded = false;
        }
        List<Thread> before = jvmHooks();
        boolean[] threw = {false};
        Method main = Class.forName(mainClass).getMethod("main", String[].class);
        Thread tool = new Thread(group, () -> {
            try {
                main.invoke(null, (Object) args);
            } catch (InvocationTargetException e) {
                if (!(e.getCause() instanceof ExitError)) {
                    threw[0] = true;
                }
                sneaky(e.getCause());
            } catch (IllegalAccessException e) {
                sneaky(e);
            } finally {
                synchronized (LOCK) {
                    toolEnded = true;
                    LOCK.notifyAll();
                }
            }
        }, "main");
        tool.start();
        synchronized (LOCK) {
            while (!toolEnded && exitCode == null) {
                LOCK.wait();  // notified by the end of main or by an exit
            }
        }
        if (exitThread == tool) {
            tool.join();  // unwinding from its exit
        }
        if (exitCodeOrNull() == null) {
            // main returned or threw: a JVM waits for the non-daemon threads, then exits.
            boolean waited = true;
            while (waited && exitCodeOrNull() == null) {
                waited = false;
                for (Thread t : threads(group)) {
                    if (!t.isDaemon()) {
                        t.join();
                        waited = true;
                    }
                }
            }
        }
        boolean halt;
        synchronized (LOCK) {
            halt = halted;
        }
        // The shutdown hooks it added (Runtime.addShutdownHook, Exit.addShutdownHook) run now, as at
        // its JVM's exit (not after a halt).
        List<Thread> hooks = jvmHooks();
        hooks.removeAll(before);
        for (Thread t : hooks) {
            Runtime.getRuntime().removeShutdownHook(t);
        }
        if (!halt) {
            for (Thread t : hooks) {
                t.start();
            }
            for (Thread t : hooks) {
                t.join();
            }
        }
        Integer code = exitCodeOrNull();
        return code != null ? code : threw[0] ? 1 : 0;
    }

    /**
     * After a tool's run, what its JVM's exit would have ended: the admin clients it left open
     * (TransactionsCommand does not close its own) are closed, as the exit's closing of their
     * sockets. False when a thread of the tool is still alive after that.
     */
    static boolean reclaim(ThreadGroup group) throws Exception {
        Field target = Thread.class.getDeclaredField("target");
        target.setAccessible(true);
        for (Thread t : threads(group)) {
            Object runnable = target.get(t);
            if (runnable != null && runnable.getClass().getName().equals(ADMIN_RUNNABLE)) {
                Field outer = runnable.getClass().getDeclaredField("this$0");
                outer.setAccessible(true);
                ((Admin) outer.get(runnable)).close(Duration.ZERO);
                t.join();
            }
        }
        return threads(group).isEmpty();
    }

    static final String ADMIN_RUNNABLE = "org.apache.kafka.clients.admin.KafkaAdminClient$AdminClientRunnable";

    /** The JVM's shutdown hooks (java.lang.ApplicationShutdownHooks; needs --add-opens java.base/java.lang). */
    @SuppressWarnings("unchecked")
    static List<Thread> jvmHooks() throws ReflectiveOperationException {
        Class<?> holder = Class.forName("java.lang.ApplicationShutdownHooks");
        Field field = holder.getDeclaredField("hooks");
        field.setAccessible(true);
        synchronized (holder) {
            Map<Thread, Thread> hooks = (Map<Thread, Thread>) field.get(null);
            return hooks == null ? new ArrayList<>() : new ArrayList<>(hooks.keySet());
        }
    }

    static Integer exitCodeOrNull() {
        synchronized (LOCK) {
            return exitCode;
        }
    }

    static List<Thread> threads(ThreadGroup group) {
        Thread[] all = new Thread[group.activeCount() + 16];
        int count = group.enumerate(all, true);
        List<Thread> alive = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            if (all[i].isAlive()) {
                alive.add(all[i]);
            }
        }
        return alive;
    }

    @SuppressWarnings("unchecked")
    static <T extends Throwable> void sneaky(Throwable t) throws T {
        throw (T) t;
    }
}
