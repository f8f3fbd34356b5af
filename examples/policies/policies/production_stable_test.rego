package nestor.deployment.production_stable_test

import rego.v1

import data.nestor.deployment.production_stable

resource(maturity) := {
	"name": "db",
	"catalog_ref": "aws-rds-postgres:1.0.0",
	"engine": "terraform",
	"inputs": {},
	"definition": {"metadata": {"name": "aws-rds-postgres", "maturity": maturity}},
}

test_beta_is_refused_in_production if {
	count(production_stable.deny) == 1 with input as {"environment": "production", "resources": [resource("beta")]}
}

test_stable_passes_in_production if {
	count(production_stable.deny) == 0 with input as {"environment": "production", "resources": [resource("stable")]}
}

test_beta_passes_in_staging if {
	count(production_stable.deny) == 0 with input as {"environment": "staging", "resources": [resource("beta")]}
}
