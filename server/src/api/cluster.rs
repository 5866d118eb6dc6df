//! The Cluster service (etcd's `v3rpc/member.go`): MemberList over the applied membership.
//! Adding, removing, updating and promoting members arrive with multi-member clusters
//! (issue 5) and answer UNIMPLEMENTED until then.

use tonic::{Request, Response, Status};

use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};

/// The Cluster service over one member.
pub struct ClusterService {
    server: EtcdServer,
}

impl ClusterService {
    pub fn new(server: EtcdServer) -> ClusterService {
        ClusterService { server }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "oxcd: {what} is not implemented yet (multi-member clusters)"
    ))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self
            .server
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: m.is_learner,
            })
            .collect();
        // etcd's Cluster service header carries no revision.
        Ok(Response::new(MemberListResponse {
            header: Some(self.server.header(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("MemberPromote"))
    }
}
