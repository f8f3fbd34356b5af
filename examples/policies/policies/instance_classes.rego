# Database instance classes allowed per environment: small ones while
# developing, the memory-optimised families in production. An environment
# not listed allows none; a class that is not allowed yet but close is a
# warning in staging, so teams see it before production.
package nestor.deployment.instance_classes

import rego.v1

allowed := {
	"development": {"db.t4g.micro", "db.t4g.small"},
	"staging": {"db.t4g.medium", "db.t4g.large"},
	"production": {"db.r6g.large", "db.r6g.xlarge", "db.r6g.2xlarge"},
}

deny contains msg if {
	some r in input.resources
	class := r.inputs.instance_class
	not class in object.get(allowed, input.environment, set())
	input.environment != "staging"
	msg := sprintf("%s: instance class %s is not allowed in %s", [r.name, class, input.environment])
}

warn contains msg if {
	input.environment == "staging"
	some r in input.resources
	class := r.inputs.instance_class
	not class in allowed.staging
	msg := sprintf("%s: instance class %s is not a staging class", [r.name, class])
}
