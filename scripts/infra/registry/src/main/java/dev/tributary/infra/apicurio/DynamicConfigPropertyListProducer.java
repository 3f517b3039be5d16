package dev.tributary.infra.apicurio;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;
import java.util.List;

/**
 * Stands in for the bean that apicurio-common-app-components-config-index's
 * Quarkus deployment module would generate at build time (that deployment jar
 * is not on Maven Central). With an empty list, no property is editable at run
 * time through /apis/registry/v2/admin/config; everything else is unchanged.
 */
@ApplicationScoped
public class DynamicConfigPropertyListProducer {
    @Produces
    @ApplicationScoped
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
