# Production runs only what the platform team calls stable: every resource
# of a deployment to production must pin a definition whose maturity is
# `stable`.
package nestor.deployment.production_stable

import rego.v1

deny contains msg if {
	input.environment == "production"
	some r in input.resources
	r.definition.metadata.maturity != "stable"
	msg := sprintf(
		"%s uses %s, whose maturity is %s: production needs stable definitions",
		[r.name, r.catalog_ref, r.definition.metadata.maturity],
	)
}
