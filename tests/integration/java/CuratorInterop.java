/*
 * CuratorInterop - a plain Apache Curator Service Discovery client for
 * beacon's ZooKeeper interop test (tests/integration/test_zookeeper.py).
 *
 *   java CuratorInterop <connect> <basePath> <ownName> <ownId> <findName> <findId>
 *
 * Registers <ownName>/<ownId> the way a Java service does
 * (ServiceDiscovery.registerService, payload a java.util.Map), prints
 * "REGISTERED", then calls queryForInstances(<findName>) until the instance
 * <findId> is there (20 s at most) and prints it as one JSON line
 * "FOUND {...}" (or "NOTFOUND"), then waits for stdin to close, unregisters
 * and exits. One JVM does both directions, since JVM starts are the slow part.
 * The payload class is Map with Curator's own JsonInstanceSerializer, as a
 * plain Curator client reads payloads; a Spring "@class" tag would break it.
 */
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;

import com.fasterxml.jackson.databind.ObjectMapper;

public class CuratorInterop {
    @SuppressWarnings({"rawtypes", "unchecked"})
    public static void main(String[] a) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(a[0], 10000, 5000,
                new RetryNTimes(10, 200));
        client.start();
        client.blockUntilConnected();
        ServiceDiscovery<Map> sd = ServiceDiscoveryBuilder.builder(Map.class).client(client)
                .basePath(a[1]).serializer(new JsonInstanceSerializer<>(Map.class)).build();
        sd.start();

        Map<String, Object> payload = new HashMap<>();
        payload.put("tags", List.of("java", "curator"));
        payload.put("meta", Map.of("lang", "java"));
        ServiceInstance<Map> own = ServiceInstance.<Map>builder().name(a[2]).id(a[3])
                .address("10.9.8.7").port(9090).payload(payload).build();
        sd.registerService(own);
        System.out.println("REGISTERED");
        System.out.flush();

        ObjectMapper json = new ObjectMapper();
        String found = null;
        long deadline = System.currentTimeMillis() + 20000;
        while (found == null && System.currentTimeMillis() < deadline) {
            Collection<ServiceInstance<Map>> all = sd.queryForInstances(a[4]);
            for (ServiceInstance<Map> si : all) {
                if (si.getId().equals(a[5])) {
                    Map<String, Object> out = new HashMap<>();
                    out.put("id", si.getId());
                    out.put("name", si.getName());
                    out.put("address", si.getAddress());
                    out.put("port", si.getPort());
                    out.put("payload", si.getPayload());
                    out.put("serviceType", String.valueOf(si.getServiceType()));
                    found = json.writeValueAsString(out);
                }
            }
            if (found == null)
                Thread.sleep(100);
        }
        System.out.println(found != null ? "FOUND " + found : "NOTFOUND");
        System.out.flush();

        while (System.in.read() >= 0) {
        }
        sd.unregisterService(own);
        sd.close();
        client.close();
    }
}
