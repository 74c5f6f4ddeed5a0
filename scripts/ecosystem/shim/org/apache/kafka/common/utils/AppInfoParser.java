/*
 * kbroker test shim. connect-file and connect-mirror 4.4.0 are not on Maven Central, so the tests run
 * the 4.3.1 plugins on the 4.4.0 Connect worker; Kafka 4.4 moved AppInfoParser to
 * org.apache.kafka.common.utils.internals, the one class (with Exit) the 4.3.1 plugins miss. This
 * forwards the one method they call.
 */
package org.apache.kafka.common.utils;

public final class AppInfoParser {
    private AppInfoParser() {
    }

    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }
}
