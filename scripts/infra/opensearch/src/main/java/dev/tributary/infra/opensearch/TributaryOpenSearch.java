package dev.tributary.infra.opensearch;

import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single-node OpenSearch for local tests, run from plain Maven Central jars.
 *
 * <p>OpenSearch's own launcher (org.opensearch.bootstrap.OpenSearch) expects the
 * distribution layout (modules/, jvm.options, security policy files) that only the
 * release archives have. A {@link Node} subclass needs none of it: the netty4 module,
 * which provides the HTTP and transport layers, is loaded as a classpath plugin.
 *
 * <p>Arguments are {@code key=value} settings (for example {@code http.port=19200});
 * they override the defaults below.
 */
public final class TributaryOpenSearch {

    /** Exposes Node's protected constructor that accepts classpath plugins. */
    static final class PluginNode extends Node {
        PluginNode(Settings settings) {
            super(
                InternalSettingsPreparer.prepareEnvironment(settings, java.util.Map.of(), null, () -> "tributary"),
                List.of(Netty4Plugin.class),
                true
            );
        }
        // Node.validateNodeBeforeAcceptingRequests is a no-op; only the official
        // launcher runs the bootstrap checks (vm.max_map_count, file descriptors, ...).
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder()
            .put("cluster.name", "tributary")
            .put("node.name", "tributary")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            // Tests create throwaway indices; a nearly full developer disk must not
            // turn them read-only (the flood-stage watermark would).
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.destructive_requires_name", false);
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got: " + arg);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();

        // Logging comes from log4j2.properties on the classpath (console only; the start
        // script sends stdout to the service log). OpenSearch's LogConfigurator would look
        // for a config directory that a jar-based node does not have.
        LogConfigurator.setNodeName(settings.get("node.name"));

        Node node = new PluginNode(settings);
        CountDownLatch stopped = new CountDownLatch(1);
        // OpenSearch's threads are daemons: keep the JVM alive until SIGTERM, then close
        // the node cleanly so the data directory stays usable across restarts.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "tributary-shutdown"));
        node.start();
        stopped.await();
    }

    private TributaryOpenSearch() {}
}
