//! The Cluster service (etcd's `v3rpc/member.go`): MemberAdd, MemberRemove, MemberUpdate,
//! MemberPromote and MemberList over the applied membership. Headers carry no revision, as
//! etcd's Cluster service headers do not. Refusals go through the one error table
//! (`api::errors::to_status`).

use tonic::{Request, Response, Status};

use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};

/// The Cluster service over one member.
pub struct ClusterService {
    server: EtcdServer,
}

impl ClusterService {
    pub fn new(server: EtcdServer) -> ClusterService {
        ClusterService { server }
    }

    /// etcd's Cluster header: cluster, member and term, no revision.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.server.header(0))
    }
}

/// A membership record as the wire's `Member`.
fn to_pb(member: crate::membership::Member) -> Member {
    Member {
        id: member.id,
        name: member.name,
        peer_ur_ls: member.peer_urls,
        client_ur_ls: member.client_urls,
        is_learner: member.is_learner,
    }
}

fn to_pb_list(members: Vec<crate::membership::Member>) -> Vec<Member> {
    members.into_iter().map(to_pb).collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let request = request.into_inner();
        let (member, members) = self
            .server
            .add_member(&request.peer_ur_ls, request.is_learner)
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(to_pb(member)),
            members: to_pb_list(members),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let members = self.server.remove_member(request.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: to_pb_list(members),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let request = request.into_inner();
        let members = self
            .server
            .update_member(request.id, request.peer_ur_ls)
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: to_pb_list(members),
        }))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: to_pb_list(self.server.members()),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let members = self.server.promote_member(request.into_inner().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: to_pb_list(members),
        }))
    }
}
