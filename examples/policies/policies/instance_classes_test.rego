package nestor.deployment.instance_classes_test

import rego.v1

import data.nestor.deployment.instance_classes

db(class) := {"name": "db", "inputs": {"instance_class": class}}

test_a_production_class_passes_in_production if {
	count(instance_classes.deny) == 0 with input as {"environment": "production", "resources": [db("db.r6g.large")]}
}

test_a_small_class_is_refused_in_production if {
	instance_classes.deny == {"db: instance class db.t4g.micro is not allowed in production"} with input as {"environment": "production", "resources": [db("db.t4g.micro")]}
}

test_staging_warns_and_refuses_nothing if {
	count(instance_classes.deny) == 0 with input as {"environment": "staging", "resources": [db("db.r6g.large")]}
	count(instance_classes.warn) == 1 with input as {"environment": "staging", "resources": [db("db.r6g.large")]}
}

test_resources_without_a_class_are_ignored if {
	count(instance_classes.deny) == 0 with input as {"environment": "production", "resources": [{"name": "web", "inputs": {"replicas": 3}}]}
}
