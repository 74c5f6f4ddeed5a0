/*
 * kbroker test shim (see AppInfoParser.java): Kafka 4.4 moved Exit to
 * org.apache.kafka.common.utils.internals; this forwards the two methods the 4.3.1 MirrorMaker calls.
 */
package org.apache.kafka.common.utils;

public final class Exit {
    private Exit() {
    }

    public static void exit(int statusCode) {
        org.apache.kafka.common.utils.internals.Exit.exit(statusCode);
    }

    public static void addShutdownHook(String name, Runnable runnable) {
        org.apache.kafka.common.utils.internals.Exit.addShutdownHook(name, runnable);
    }
}
