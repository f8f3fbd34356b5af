//! The four bundled engines, loaded as components, render what docs/src/plugins/sdk.md says.

use nestor_core::{Error, ErrorCode, Reach};
use serde_json::{json, Value};

use crate::support::{artifact, definition, mysql_inputs, registry, request, web_inputs};

#[test]
fn the_bundled_engines_are_listed_healthy() {
    let list = registry().list();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["crossplane", "helm", "pulumi", "terraform"]);
    for status in &list {
        assert!(status.healthy, "{status:?}");
        assert_eq!(status.source, "bundled");
        assert_eq!(status.sha256.len(), 64);
        assert_eq!(status.version, "0.1.0");
        assert!(!status.description.is_empty());
    }
}

#[tokio::test]
async fn terraform_renders_a_module_call_with_outputs() {
    let def = definition("mysql");
    let out = registry()
        .render(
            "terraform",
            &request(&def, "database", "terraform", mysql_inputs()),
        )
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(artifact(&out, "main.tf.json")).unwrap();
    let module = &doc["module"]["database"];
    assert_eq!(module["source"], "./modules/rds-stub");
    assert!(
        module.get("version").is_none(),
        "a local module takes no version: {module}"
    );
    assert_eq!(module["identifier"], "alpha-staging-database");
    assert_eq!(module["instance_class"], "db.t3.micro");
    assert_eq!(
        module["tags"]["cost"], "$${not-a-template}",
        "input strings are escaped, not interpolated"
    );
    assert_eq!(
        doc["output"]["endpoint"]["value"],
        "${module.database.db_instance_address}"
    );
    assert_eq!(doc["output"]["master_user_secret_arn"]["sensitive"], true);
    // Outside its own files a Terraform output is a key of the Workspace's
    // connection secret, never a `${module...}` expression.
    assert_eq!(
        out.outputs["endpoint"],
        Reach::secret_key("shop--database-outputs", "alpha--staging", "endpoint")
    );
    let workspace: Value = serde_yaml::from_str(artifact(&out, "workspace.yaml")).unwrap();
    assert_eq!(workspace["apiVersion"], "tf.upbound.io/v1beta1");
    assert_eq!(workspace["kind"], "Workspace");
    assert_eq!(
        workspace["metadata"]["name"], "alpha--staging--shop--database",
        "Workspaces are cluster-scoped: the name carries the namespace"
    );
    assert_eq!(
        workspace["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
        "2"
    );
    let for_provider = &workspace["spec"]["forProvider"];
    assert_eq!(for_provider["source"], "Inline");
    assert_eq!(for_provider["inlineFormat"], "JSON");
    assert_eq!(
        for_provider["module"].as_str().unwrap(),
        artifact(&out, "main.tf.json"),
        "the Workspace runs exactly the committed module"
    );
    assert_eq!(
        workspace["spec"]["writeConnectionSecretToRef"],
        json!({"name": "shop--database-outputs", "namespace": "alpha--staging"})
    );
    assert_eq!(workspace["spec"]["providerConfigRef"]["name"], "default");
}

#[tokio::test]
async fn terraform_keeps_registry_versions_and_expands_the_backend() {
    let def = definition("mysql");
    let mut req = request(&def, "database", "terraform", mysql_inputs());
    req.engine_config = json!({
        "moduleSource": "terraform-aws-modules/rds/aws",
        "moduleVersion": "~> 5.0",
        "backend": {"type": "s3", "config": {"bucket": "tfstate", "key": "{team}/{environment}/{deployment}/{resource}.tfstate"}},
    });
    let out = registry().render("terraform", &req).await.unwrap();
    let doc: Value = serde_json::from_str(artifact(&out, "main.tf.json")).unwrap();
    assert_eq!(doc["module"]["database"]["version"], "~> 5.0");
    assert_eq!(
        doc["terraform"]["backend"]["s3"],
        json!({"bucket": "tfstate", "key": "alpha/staging/shop/database.tfstate"})
    );
}

#[tokio::test]
async fn a_refused_engine_config_is_validation_failed_naming_the_key() {
    let def = definition("mysql");
    let mut req = request(&def, "database", "terraform", mysql_inputs());
    req.engine_config = json!({"module_version": "1"});
    let err = registry().render("terraform", &req).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed);
    let Error::Validation { errors } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        errors[0].field,
        "spec.engine_configs.terraform.module_source"
    );
    assert!(
        errors[0].message.contains("bundled:terraform") && errors[0].message.contains("required"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn an_unknown_engine_is_engine_not_found() {
    let def = definition("mysql");
    let err = registry()
        .render("ansible", &request(&def, "db", "ansible", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EngineNotFound);
}

#[tokio::test]
async fn crossplane_renders_a_claim_with_composition_and_connection_secret() {
    let def = definition("mysql");
    let out = registry()
        .render(
            "crossplane",
            &request(&def, "database", "crossplane", mysql_inputs()),
        )
        .await
        .unwrap();
    assert_eq!(out.artifacts.len(), 1);
    let doc: Value = serde_yaml::from_str(&out.artifacts[0].content).unwrap();
    assert_eq!(doc["apiVersion"], "database.example.org/v1alpha1");
    assert_eq!(doc["kind"], "MySQLInstance");
    assert_eq!(doc["metadata"]["name"], "shop--database");
    assert_eq!(doc["metadata"]["namespace"], "alpha--staging");
    assert_eq!(
        doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
        "2"
    );
    assert_eq!(doc["spec"]["compositionRef"]["name"], "rds-mysql-aws");
    assert_eq!(doc["spec"]["parameters"]["instanceClass"], "db.t3.micro");
    assert_eq!(doc["spec"]["parameters"]["storageGB"], 50);
    assert_eq!(
        doc["spec"]["parameters"]["network"]["securityGroupIds"],
        json!(["sg-1", "sg-2"])
    );
    assert_eq!(
        doc["spec"]["writeConnectionSecretToRef"]["name"],
        "shop--database-conn"
    );
    assert_eq!(
        out.outputs["master_user_secret_arn"],
        Reach::secret_key(
            "shop--database-conn",
            "alpha--staging",
            "masterUserSecretArn"
        )
    );
}

#[tokio::test]
async fn crossplane_derives_api_version_and_kind_when_unconfigured() {
    let def = definition("mysql");
    let mut req = request(
        &def,
        "db",
        "crossplane",
        json!({"instance_class": "db.t3.micro"}),
    );
    req.engine_config = json!({"composite": true});
    let out = registry().render("crossplane", &req).await.unwrap();
    let doc: Value = serde_yaml::from_str(&out.artifacts[0].content).unwrap();
    assert_eq!(doc["apiVersion"], "database.aws.nestor.io/v1alpha1");
    assert_eq!(doc["kind"], "XMysql");
    assert!(
        doc["metadata"].get("namespace").is_none(),
        "a composite resource is cluster-scoped"
    );
    assert_eq!(
        doc["spec"]["writeConnectionSecretToRef"]["namespace"],
        "crossplane-system"
    );
}

#[tokio::test]
async fn helm_renders_values_and_an_argo_cd_application() {
    let def = definition("web-app");
    let out = registry()
        .render("helm", &request(&def, "web", "helm", web_inputs()))
        .await
        .unwrap();
    let values: Value = serde_yaml::from_str(artifact(&out, "values.yaml")).unwrap();
    assert_eq!(values["replicaCount"], 3);
    assert_eq!(
        values["image"],
        json!({"repository": "nginx", "tag": "1.27"})
    );
    assert_eq!(
        values["service"],
        json!({"type": "ClusterIP", "port": 8080})
    );
    let app: Value = serde_yaml::from_str(artifact(&out, "application.yaml")).unwrap();
    assert_eq!(app["kind"], "Application");
    let source = &app["spec"]["source"];
    assert_eq!(source["chart"], "web");
    assert_eq!(source["repoURL"], "https://charts.example.com/stable");
    assert_eq!(source["targetRevision"], "0.1.0");
    assert_eq!(source["helm"]["valuesObject"], values);
    assert_eq!(source["helm"]["releaseName"], "shop--web");
    // A child Application lives in the team's namespace, which the team's
    // AppProject accepts (`sourceNamespaces`), named like the other objects.
    assert_eq!(app["metadata"]["name"], "shop--web");
    assert_eq!(app["metadata"]["namespace"], "alpha--staging");
    assert_eq!(app["spec"]["project"], "nestor-alpha");
    assert_eq!(
        app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
        "2"
    );
    assert_eq!(app["spec"]["destination"]["namespace"], "alpha--staging");
    assert_eq!(
        out.outputs["url"],
        Reach::value("http://shop--web.alpha--staging.svc.cluster.local:8080")
    );
    assert_eq!(
        out.outputs["host"],
        Reach::value("shop--web.alpha--staging.svc.cluster.local")
    );
}

#[tokio::test]
async fn pulumi_renders_a_yaml_program_and_stack_config() {
    let def = definition("mysql");
    let out = registry()
        .render(
            "pulumi",
            &request(&def, "database", "pulumi", mysql_inputs()),
        )
        .await
        .unwrap();
    let program: Value = serde_yaml::from_str(artifact(&out, "Pulumi.yaml")).unwrap();
    assert_eq!(program["name"], "shop--database");
    assert_eq!(program["runtime"], "yaml");
    let resource = &program["resources"]["database"];
    assert_eq!(resource["type"], "aws:rds:Instance");
    assert_eq!(resource["properties"]["instanceClass"], "${instanceClass}");
    assert_eq!(resource["properties"]["multiAz"], "${multiAz}");
    assert_eq!(
        resource["properties"]["identifier"],
        "alpha-staging-database"
    );
    assert_eq!(
        resource["properties"]["tags"]["team"], "alpha",
        "objects are written as literals"
    );
    assert_eq!(
        program["config"]["vpcSecurityGroupIds"],
        json!({"type": "array", "items": {"type": "string"}})
    );
    assert_eq!(program["config"]["masterPassword"]["secret"], true);
    assert_eq!(
        program["outputs"]["master_user_secret_arn"],
        "${database.masterUserSecrets[0].secretArn}"
    );
    let stack: Value = serde_yaml::from_str(artifact(&out, "Pulumi.staging.yaml")).unwrap();
    assert_eq!(stack["config"]["shop--database:allocatedStorage"], 50);
    assert!(
        stack["config"]
            .get("shop--database:masterPassword")
            .is_none(),
        "secrets stay out of the stack file"
    );
    let mut endpoint = Reach::stack_output("organization/shop--database/staging", "endpoint");
    endpoint.secret_key_ref =
        Reach::secret_key("shop--database-outputs", "alpha--staging", "endpoint").secret_key_ref;
    assert_eq!(out.outputs["endpoint"], endpoint);

    // What the Pulumi Kubernetes Operator runs: the same program in a
    // Program, and a Stack of this environment pointing at it.
    let program_object: Value = serde_yaml::from_str(artifact(&out, "program.yaml")).unwrap();
    assert_eq!(program_object["kind"], "Program");
    assert_eq!(program_object["metadata"]["namespace"], "alpha--staging");
    let inline = &program_object["program"]["resources"]["database"]["properties"];
    assert_eq!(inline["instanceClass"], "db.t3.micro", "values are inline");
    assert_eq!(inline["masterPassword"], "${masterPassword}");
    assert_eq!(
        program_object["program"]["configuration"]["masterPassword"]["type"],
        "String"
    );
    let stack_object: Value = serde_yaml::from_str(artifact(&out, "stack.yaml")).unwrap();
    assert_eq!(stack_object["kind"], "Stack");
    assert_eq!(stack_object["spec"]["stack"], "organization/staging");
    assert_eq!(stack_object["spec"]["programRef"]["name"], "shop--database");
    assert_eq!(
        stack_object["spec"]["secretsRef"]["masterPassword"],
        json!({"type": "Secret", "secret": {"name": "shop--database-secrets", "key": "master_password"}})
    );
    assert_eq!(
        stack_object["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
        "2"
    );
}

/// Every definition of examples/catalog renders with every bundled engine it
/// supports: the engine configs the catalog uses are the ones we accept.
#[tokio::test]
async fn the_example_catalog_renders_with_every_supported_engine() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        eprintln!("skipped: no definitions under {}", root.display());
        return;
    }
    let mut rendered = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let Ok(def) = nestor_core::parse_definition_yaml(&text) else {
            continue;
        };
        let inputs: serde_json::Map<String, Value> = def
            .inputs()
            .map(|(input, _)| {
                let value = input
                    .default
                    .clone()
                    .unwrap_or_else(|| match input.value_type {
                        nestor_core::ValueType::String => json!("value"),
                        nestor_core::ValueType::Integer | nestor_core::ValueType::Number => {
                            json!(1)
                        }
                        nestor_core::ValueType::Boolean => json!(true),
                        nestor_core::ValueType::Array => json!(["a"]),
                        nestor_core::ValueType::Object => json!({"k": "v"}),
                    });
                (input.name.clone(), value)
            })
            .collect();
        for engine in &def.spec.supported_engines {
            if registry().get(engine).is_err() {
                continue;
            }
            let req = request(&def, "res", engine, Value::Object(inputs.clone()));
            let out = registry()
                .render(engine, &req)
                .await
                .unwrap_or_else(|e| panic!("{} with {engine}: {e}", file.display()));
            assert!(!out.artifacts.is_empty());
            rendered += 1;
        }
    }
    eprintln!("rendered {rendered} example definition/engine pairs");
}
