//! The few etcd 3.4 protobuf messages a WAL's entries carry, written by hand for prost (no
//! protoc): `etcdserverpb.Metadata`, the v2 `etcdserverpb.Request`, `InternalRaftRequest` and
//! the v3 requests it wraps (`rpc.proto`), and `raftpb.ConfChange` / `ConfChangeV2`. Field
//! numbers are etcd's; they are the whole contract, names are ours.
//!
//! Only what a dump summarises is declared: prost skips every other field, so a message
//! from a newer etcd still decodes. Secrets (passwords, tokens) are deliberately not
//! declared, so they are never even held in memory. Strings etcd declares as `string` are
//! read as bytes, so a name that is not UTF-8 cannot make a whole entry undecodable.
//!
//! Pure data, no I/O.

use prost::Message;

/// `etcdserverpb.Metadata`: what etcd stores in the WAL's metadata record (proto2, both fields
/// always written).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Metadata {
    #[prost(uint64, required, tag = "1")]
    pub node_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub cluster_id: u64,
}

impl Metadata {
    /// Decodes `bytes` only if they are exactly etcd's encoding of a `Metadata` (re-encoding
    /// gives the same bytes); anything else is some other program's metadata.
    pub fn decode_exact(bytes: &[u8]) -> Option<Metadata> {
        let metadata = Metadata::decode(bytes).ok()?;
        (metadata.encode_to_vec() == bytes).then_some(metadata)
    }
}

/// `etcdserverpb.Request`: a v2 store request (etcd 3.4 still proposes member attributes and
/// cluster version this way).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Request {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub method: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub path: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub val: Vec<u8>,
}

/// `etcdserverpb.RequestHeader`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RequestHeader {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub username: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
}

/// `etcdserverpb.InternalRaftRequest`: what etcd 3 proposes for every v3 write. Exactly one
/// request field is set.
#[derive(Clone, PartialEq, Message)]
pub struct InternalRaftRequest {
    #[prost(message, optional, tag = "100")]
    pub header: Option<RequestHeader>,
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, optional, tag = "2")]
    pub v2: Option<Request>,
    #[prost(message, optional, tag = "3")]
    pub range: Option<RangeRequest>,
    #[prost(message, optional, tag = "4")]
    pub put: Option<PutRequest>,
    #[prost(message, optional, tag = "5")]
    pub delete_range: Option<DeleteRangeRequest>,
    #[prost(message, optional, tag = "6")]
    pub txn: Option<TxnRequest>,
    #[prost(message, optional, tag = "7")]
    pub compaction: Option<CompactionRequest>,
    #[prost(message, optional, tag = "8")]
    pub lease_grant: Option<LeaseGrantRequest>,
    #[prost(message, optional, tag = "9")]
    pub lease_revoke: Option<LeaseRevokeRequest>,
    #[prost(message, optional, tag = "10")]
    pub alarm: Option<AlarmRequest>,
    #[prost(message, optional, tag = "11")]
    pub lease_checkpoint: Option<LeaseCheckpointRequest>,
    #[prost(message, optional, tag = "1000")]
    pub auth_enable: Option<Empty>,
    #[prost(message, optional, tag = "1011")]
    pub auth_disable: Option<Empty>,
    #[prost(message, optional, tag = "1012")]
    pub authenticate: Option<Named>,
    #[prost(message, optional, tag = "1100")]
    pub auth_user_add: Option<AuthUserAddRequest>,
    #[prost(message, optional, tag = "1101")]
    pub auth_user_delete: Option<Named>,
    #[prost(message, optional, tag = "1102")]
    pub auth_user_get: Option<Named>,
    #[prost(message, optional, tag = "1103")]
    pub auth_user_change_password: Option<Named>,
    #[prost(message, optional, tag = "1104")]
    pub auth_user_grant_role: Option<NamePair>,
    #[prost(message, optional, tag = "1105")]
    pub auth_user_revoke_role: Option<NamePair>,
    #[prost(message, optional, tag = "1106")]
    pub auth_user_list: Option<Empty>,
    #[prost(message, optional, tag = "1107")]
    pub auth_role_list: Option<Empty>,
    #[prost(message, optional, tag = "1200")]
    pub auth_role_add: Option<Named>,
    #[prost(message, optional, tag = "1201")]
    pub auth_role_delete: Option<Named>,
    #[prost(message, optional, tag = "1202")]
    pub auth_role_get: Option<Named>,
    #[prost(message, optional, tag = "1203")]
    pub auth_role_grant_permission: Option<AuthRoleGrantPermissionRequest>,
    #[prost(message, optional, tag = "1204")]
    pub auth_role_revoke_permission: Option<AuthRoleRevokePermissionRequest>,
}

/// A request without fields (`AuthEnableRequest`, `AuthUserListRequest`, ...).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Empty {}

/// The many auth requests whose first field is a user or role name (field 1: `name`, or
/// `role` for the role requests); their other fields (passwords) are not read.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Named {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
}

/// `AuthUserGrantRoleRequest` (user, role) and `AuthUserRevokeRoleRequest` (name, role).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct NamePair {
    #[prost(bytes = "vec", tag = "1")]
    pub user: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub role: Vec<u8>,
}

/// `AuthUserAddRequest`: name and options (the password, field 2, is not read).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthUserAddRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub options: Option<UserAddOptions>,
}

/// `authpb.UserAddOptions`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct UserAddOptions {
    #[prost(bool, tag = "1")]
    pub no_password: bool,
}

/// `authpb.Permission`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Permission {
    /// 0 READ, 1 WRITE, 2 READWRITE.
    #[prost(int32, tag = "1")]
    pub perm_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

/// `AuthRoleGrantPermissionRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthRoleGrantPermissionRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub perm: Option<Permission>,
}

/// `AuthRoleRevokePermissionRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuthRoleRevokePermissionRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub role: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

/// `RangeRequest` (sorting options are not read).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub limit: i64,
    #[prost(int64, tag = "4")]
    pub revision: i64,
    #[prost(bool, tag = "8")]
    pub keys_only: bool,
    #[prost(bool, tag = "9")]
    pub count_only: bool,
}

/// `PutRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub lease: i64,
    #[prost(bool, tag = "4")]
    pub prev_kv: bool,
    #[prost(bool, tag = "5")]
    pub ignore_value: bool,
    #[prost(bool, tag = "6")]
    pub ignore_lease: bool,
}

/// `DeleteRangeRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct DeleteRangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub prev_kv: bool,
}

/// `RequestOp`: a oneof, which on the wire is just optional fields of which one is set.
#[derive(Clone, PartialEq, Message)]
pub struct RequestOp {
    #[prost(message, optional, tag = "1")]
    pub request_range: Option<RangeRequest>,
    #[prost(message, optional, tag = "2")]
    pub request_put: Option<PutRequest>,
    #[prost(message, optional, tag = "3")]
    pub request_delete_range: Option<DeleteRangeRequest>,
    #[prost(message, optional, boxed, tag = "4")]
    pub request_txn: Option<Box<TxnRequest>>,
}

/// `Compare`. The `target_union` oneof is read as optional fields: a oneof member is written
/// even when zero, so presence tells which one was set.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Compare {
    /// 0 EQUAL, 1 GREATER, 2 LESS, 3 NOT_EQUAL.
    #[prost(int32, tag = "1")]
    pub result: i32,
    /// 0 VERSION, 1 CREATE, 2 MOD, 3 VALUE, 4 LEASE.
    #[prost(int32, tag = "2")]
    pub target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    #[prost(int64, optional, tag = "4")]
    pub version: Option<i64>,
    #[prost(int64, optional, tag = "5")]
    pub create_revision: Option<i64>,
    #[prost(int64, optional, tag = "6")]
    pub mod_revision: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub value: Option<Vec<u8>>,
    #[prost(int64, optional, tag = "8")]
    pub lease: Option<i64>,
    #[prost(bytes = "vec", tag = "64")]
    pub range_end: Vec<u8>,
}

/// `TxnRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

/// `CompactionRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct CompactionRequest {
    #[prost(int64, tag = "1")]
    pub revision: i64,
    #[prost(bool, tag = "2")]
    pub physical: bool,
}

/// `LeaseGrantRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseGrantRequest {
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    #[prost(int64, tag = "2")]
    pub id: i64,
}

/// `LeaseRevokeRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseRevokeRequest {
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// `LeaseCheckpoint`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseCheckpoint {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub remaining_ttl: i64,
}

/// `LeaseCheckpointRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseCheckpointRequest {
    #[prost(message, repeated, tag = "1")]
    pub checkpoints: Vec<LeaseCheckpoint>,
}

/// `AlarmRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AlarmRequest {
    /// 0 GET, 1 ACTIVATE, 2 DEACTIVATE.
    #[prost(int32, tag = "1")]
    pub action: i32,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    /// 0 NONE, 1 NOSPACE, 2 CORRUPT.
    #[prost(int32, tag = "3")]
    pub alarm: i32,
}

/// `raftpb.ConfChange` (proto2; id, type and node id always written).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ConfChange {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// 0 AddNode, 1 RemoveNode, 2 UpdateNode, 3 AddLearnerNode.
    #[prost(int32, tag = "2")]
    pub change_type: i32,
    #[prost(uint64, tag = "3")]
    pub node_id: u64,
    /// etcd: the JSON of the member being added or updated.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub context: Option<Vec<u8>>,
}

/// `raftpb.ConfChangeSingle`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ConfChangeSingle {
    #[prost(int32, tag = "1")]
    pub change_type: i32,
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
}

/// `raftpb.ConfChangeV2`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ConfChangeV2 {
    /// 0 Auto, 1 JointImplicit, 2 JointExplicit.
    #[prost(int32, tag = "1")]
    pub transition: i32,
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub context: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_decodes_only_etcds_exact_encoding() {
        // Proves etcd's metadata bytes decode and arbitrary metadata is refused, not misread.
        let etcd = [0x08, 0x01, 0x10, 0x02];
        assert_eq!(
            Metadata::decode_exact(&etcd),
            Some(Metadata {
                node_id: 1,
                cluster_id: 2
            })
        );
        assert_eq!(Metadata::decode_exact(b"oxcd wal test metadata"), None);
        assert_eq!(Metadata::decode_exact(&[0x10, 0x02, 0x08, 0x01]), None);
        assert_eq!(Metadata::decode_exact(&[]), None);
    }

    #[test]
    fn put_wire_bytes_match_etcds_field_numbers() {
        // Proves the field numbers by decoding bytes laid out by hand from rpc.proto.
        // InternalRaftRequest{header(100){ID:7}, put(4){key:"k", value:"vv"}}
        let bytes = [
            0xa2, 0x06, 0x02, 0x08, 0x07, 0x22, 0x07, 0x0a, 0x01, b'k', 0x12, 0x02, b'v', b'v',
        ];
        let request = InternalRaftRequest::decode(&bytes[..]).expect("decodes");
        assert_eq!(request.header.map(|h| h.id), Some(7));
        let put = request.put.expect("put");
        assert_eq!(
            (put.key.as_slice(), put.value.as_slice()),
            (&b"k"[..], &b"vv"[..])
        );
    }
}
