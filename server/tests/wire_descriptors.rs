//! Schema-level compatibility with etcd 3.4.23's own .proto files.
//!
//! etcd's protos (Debian's golang-etcd-server-dev, /usr/share/gocode) are compiled here with
//! protox, and every message, field (name, number, label, type, oneof), enum value, service and
//! method in them is compared with oxcd's compiled descriptor set (`pb::FILE_DESCRIPTOR_SET`).
//! The only differences allowed are listed below: etcd 3.5 additions oxcd has on top, and the
//! v2-store field oxcd leaves out. The generated tonic servers must route every etcd method
//! path. Without the etcd sources the tests fail loudly rather than pass vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use oxcd_server::pb;
use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

const GOCODE_SRC: &str = "/usr/share/gocode/src";

/// Packages whose types oxcd defines; everything else etcd's protos import is ignored.
const PACKAGES: &[&str] = &[
    "etcdserverpb",
    "mvccpb",
    "authpb",
    "v3lockpb",
    "v3electionpb",
];

/// etcd 3.4 types oxcd does not define.
const ETCD_ONLY_MESSAGES: &[&str] = &[];
/// etcd 3.4 fields oxcd does not define (the v2 store request, reserved instead).
const ETCD_ONLY_FIELDS: &[&str] = &[".etcdserverpb.InternalRaftRequest.v2"];

/// etcd 3.5 additions oxcd defines on top of 3.4.
const ADDED_MESSAGES: &[&str] = &[
    ".etcdserverpb.DowngradeRequest",
    ".etcdserverpb.DowngradeResponse",
    ".etcdserverpb.AuthStatusRequest",
    ".etcdserverpb.AuthStatusResponse",
];
const ADDED_ENUMS: &[&str] = &[".etcdserverpb.DowngradeRequest.DowngradeAction"];
const ADDED_FIELDS: &[&str] = &[
    ".etcdserverpb.MemberListRequest.linearizable",
    ".etcdserverpb.AuthUserAddRequest.hashedPassword",
    ".etcdserverpb.AuthUserChangePasswordRequest.hashedPassword",
    ".etcdserverpb.InternalRaftRequest.auth_status",
];
const ADDED_METHODS: &[&str] = &[
    "/etcdserverpb.Maintenance/Downgrade",
    "/etcdserverpb.Auth/AuthStatus",
];

/// Everything that decides a field's bytes and name: (number, label, type, type name, oneof,
/// proto3 optional).
type FieldSig = (i32, i32, i32, String, Option<String>, bool);

/// A flattened view of one descriptor set, keyed by fully qualified names (".pkg.Msg").
#[derive(Default)]
struct Schema {
    /// Message name -> field name -> signature.
    messages: BTreeMap<String, BTreeMap<String, FieldSig>>,
    /// Enum name -> value name -> number.
    enums: BTreeMap<String, BTreeMap<String, i32>>,
    /// gRPC path ("/pkg.Service/Method") -> (input, output, client streaming, server streaming).
    methods: BTreeMap<String, (String, String, bool, bool)>,
}

impl Schema {
    fn from_set(set: &FileDescriptorSet) -> Schema {
        let mut schema = Schema::default();
        for file in &set.file {
            let package = file.package();
            if !PACKAGES.contains(&package) {
                continue;
            }
            let scope = format!(".{package}");
            for message in &file.message_type {
                schema.add_message(&scope, message);
            }
            for enumeration in &file.enum_type {
                schema.add_enum(&scope, enumeration);
            }
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{package}.{}/{}", service.name(), method.name());
                    let sig = (
                        method.input_type().to_owned(),
                        method.output_type().to_owned(),
                        method.client_streaming(),
                        method.server_streaming(),
                    );
                    schema.methods.insert(path, sig);
                }
            }
        }
        schema
    }

    fn add_message(&mut self, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        let fields = message
            .field
            .iter()
            .map(|field| {
                let oneof = field
                    .oneof_index
                    .and_then(|i| usize::try_from(i).ok())
                    .map(|i| message.oneof_decl[i].name().to_owned());
                let sig = (
                    field.number(),
                    field.label() as i32,
                    field.r#type() as i32,
                    field.type_name().to_owned(),
                    oneof,
                    field.proto3_optional(),
                );
                (field.name().to_owned(), sig)
            })
            .collect();
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for enumeration in &message.enum_type {
            self.add_enum(&name, enumeration);
        }
        self.messages.insert(name, fields);
    }

    fn add_enum(&mut self, scope: &str, enumeration: &EnumDescriptorProto) {
        let values = enumeration
            .value
            .iter()
            .map(|v| (v.name().to_owned(), v.number()))
            .collect();
        self.enums
            .insert(format!("{scope}.{}", enumeration.name()), values);
    }
}

fn gocode(relative: &str) -> String {
    let path = Path::new(GOCODE_SRC).join(relative);
    assert!(
        path.is_dir(),
        "{} is missing: these tests need etcd 3.4's sources and their proto imports \
         (apt-get install golang-etcd-server-dev)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Compiles etcd 3.4.23's own protos. raft_internal.proto imports rpc.proto by its bare name
/// and the lock and election protos import it by its long name, so they are compiled apart
/// (one compilation cannot hold the same types under two file names) and merged by name.
fn etcd_schema() -> Schema {
    let etcd_root = gocode("go.etcd.io");
    let gogo = gocode("github.com/gogo/protobuf");
    let googleapis = gocode("github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis");
    let serverpb = gocode("go.etcd.io/etcd/etcdserver/etcdserverpb");
    let core = protox::compile(
        ["raft_internal.proto"],
        [&serverpb, &etcd_root, &gogo, &googleapis],
    )
    .expect("etcd's raft_internal.proto (with rpc.proto, kv.proto, auth.proto) compiles");
    let concurrency = protox::compile(
        [
            "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
            "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
        ],
        [&etcd_root, &gogo, &googleapis],
    )
    .expect("etcd's v3lock.proto and v3election.proto compile");
    let mut schema = Schema::from_set(&core);
    let more = Schema::from_set(&concurrency);
    for (name, fields) in more.messages {
        if let Some(existing) = schema.messages.get(&name) {
            assert_eq!(
                existing, &fields,
                "etcd defines {name} differently in two places"
            );
        }
        schema.messages.insert(name, fields);
    }
    schema.enums.extend(more.enums);
    schema.methods.extend(more.methods);
    schema
}

fn oxcd_schema() -> Schema {
    let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("pb::FILE_DESCRIPTOR_SET is a valid FileDescriptorSet");
    Schema::from_set(&set)
}

fn check_messages(etcd: &Schema, oxcd: &Schema, failures: &mut Vec<String>) {
    for (name, etcd_fields) in &etcd.messages {
        if ETCD_ONLY_MESSAGES.contains(&name.as_str()) {
            continue;
        }
        let Some(oxcd_fields) = oxcd.messages.get(name) else {
            failures.push(format!("message {name} is missing"));
            continue;
        };
        for (field, sig) in etcd_fields {
            let full = format!("{name}.{field}");
            match oxcd_fields.get(field) {
                None if ETCD_ONLY_FIELDS.contains(&full.as_str()) => {}
                None => failures.push(format!("field {full} is missing")),
                Some(ours) if ours != sig => {
                    failures.push(format!("field {full}: oxcd {ours:?}, etcd {sig:?}"))
                }
                Some(_) => {}
            }
        }
        for field in oxcd_fields.keys().filter(|f| !etcd_fields.contains_key(*f)) {
            let full = format!("{name}.{field}");
            if !ADDED_FIELDS.contains(&full.as_str()) {
                failures.push(format!("field {full} is not etcd's"));
            }
        }
    }
    for name in oxcd
        .messages
        .keys()
        .filter(|m| !etcd.messages.contains_key(*m))
    {
        if !ADDED_MESSAGES.contains(&name.as_str()) {
            failures.push(format!("message {name} is not etcd's"));
        }
    }
}

fn check_enums_and_methods(etcd: &Schema, oxcd: &Schema, failures: &mut Vec<String>) {
    for (name, values) in &etcd.enums {
        match oxcd.enums.get(name) {
            None => failures.push(format!("enum {name} is missing")),
            Some(ours) if ours != values => {
                failures.push(format!("enum {name}: oxcd {ours:?}, etcd {values:?}"))
            }
            Some(_) => {}
        }
    }
    for name in oxcd.enums.keys().filter(|e| !etcd.enums.contains_key(*e)) {
        if !ADDED_ENUMS.contains(&name.as_str()) {
            failures.push(format!("enum {name} is not etcd's"));
        }
    }
    for (path, sig) in &etcd.methods {
        match oxcd.methods.get(path) {
            None => failures.push(format!("method {path} is missing")),
            Some(ours) if ours != sig => {
                failures.push(format!("method {path}: oxcd {ours:?}, etcd {sig:?}"))
            }
            Some(_) => {}
        }
    }
    for path in oxcd
        .methods
        .keys()
        .filter(|p| !etcd.methods.contains_key(*p))
    {
        if !ADDED_METHODS.contains(&path.as_str()) {
            failures.push(format!("method {path} is not etcd's"));
        }
    }
}

#[test]
fn schema_matches_etcd_protos() {
    // Proves every etcd 3.4.23 message, field, enum and method exists in oxcd unchanged.
    let etcd = etcd_schema();
    let oxcd = oxcd_schema();
    assert!(
        etcd.messages.len() > 100,
        "etcd's protos compiled to too few messages"
    );
    assert!(
        etcd.methods.len() > 40,
        "etcd's protos compiled to too few methods"
    );
    let mut failures = Vec::new();
    check_messages(&etcd, &oxcd, &mut failures);
    check_enums_and_methods(&etcd, &oxcd, &mut failures);
    assert!(
        failures.is_empty(),
        "schema differs from etcd 3.4.23:\n{}",
        failures.join("\n")
    );
}

/// The generated Rust of each package, as `build.rs` wrote it.
const GENERATED: &[(&str, &str)] = &[
    (
        "etcdserverpb",
        include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs")),
    ),
    (
        "v3lockpb",
        include_str!(concat!(env!("OUT_DIR"), "/v3lockpb.rs")),
    ),
    (
        "v3electionpb",
        include_str!(concat!(env!("OUT_DIR"), "/v3electionpb.rs")),
    ),
];

#[test]
fn generated_servers_route_etcd_paths() {
    // Proves the tonic servers dispatch on every gRPC path etcd clients call, and no other.
    let etcd = etcd_schema();
    let mut expected: BTreeSet<String> = etcd.methods.keys().cloned().collect();
    expected.extend(ADDED_METHODS.iter().map(|p| (*p).to_owned()));
    let mut routed = BTreeSet::new();
    for (package, source) in GENERATED {
        let prefix = format!("\"/{package}.");
        for line in source.lines().map(str::trim) {
            if let Some(arm) = line
                .strip_prefix(&prefix)
                .and_then(|l| l.strip_suffix("\" => {"))
            {
                routed.insert(format!("/{package}.{arm}"));
            }
        }
    }
    assert_eq!(
        routed, expected,
        "server dispatch paths differ from etcd's methods"
    );
}

#[test]
fn service_names_are_etcds() {
    // Proves the generated services register under etcd's fully qualified service names.
    use pb::etcdserverpb::{
        auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
    };
    let names = [
        kv_server::SERVICE_NAME,
        watch_server::SERVICE_NAME,
        lease_server::SERVICE_NAME,
        cluster_server::SERVICE_NAME,
        maintenance_server::SERVICE_NAME,
        auth_server::SERVICE_NAME,
        pb::v3lockpb::lock_server::SERVICE_NAME,
        pb::v3electionpb::election_server::SERVICE_NAME,
    ];
    let expected = [
        "etcdserverpb.KV",
        "etcdserverpb.Watch",
        "etcdserverpb.Lease",
        "etcdserverpb.Cluster",
        "etcdserverpb.Maintenance",
        "etcdserverpb.Auth",
        "v3lockpb.Lock",
        "v3electionpb.Election",
    ];
    assert_eq!(names, expected);
}
