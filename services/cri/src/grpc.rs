//! The gRPC services: each CRI RPC unpacks its request, calls the [`Cri`] method that does
//! the work, and is recorded in the per-RPC stats.

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use crate::Cri;
use crate::status::{CriResult, OrStatus, invalid, rpc};

type R<T> = CriResult<Response<T>>;

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by berth yet"))
}

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(&self, _r: Request<cri::VersionRequest>) -> R<cri::VersionResponse> {
        rpc(&self.stats, "version", async { Ok(crate::info::version()) }).await
    }

    async fn run_pod_sandbox(&self, r: Request<cri::RunPodSandboxRequest>) -> R<cri::RunPodSandboxResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "run_pod_sandbox", async {
            let config = r.config.ok_or_else(|| invalid("RunPodSandbox: config is required"))?;
            let id = self.run_pod(config, &r.runtime_handler).await.or_status()?;
            Ok(cri::RunPodSandboxResponse { pod_sandbox_id: id })
        })
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> R<cri::StopPodSandboxResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "stop_pod_sandbox", async {
            self.stop_pod(&r.pod_sandbox_id).await.or_status()?;
            Ok(cri::StopPodSandboxResponse {})
        })
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> R<cri::RemovePodSandboxResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "remove_pod_sandbox", async {
            self.remove_pod(&r.pod_sandbox_id).await.or_status()?;
            Ok(cri::RemovePodSandboxResponse {})
        })
        .await
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> R<cri::PodSandboxStatusResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "pod_sandbox_status", async {
            let (status, info) = self.pod_status(&r.pod_sandbox_id, r.verbose).await.or_status()?;
            let containers_statuses = Vec::new();
            let timestamp = crate::records::ns_i64(berth_service_kit::time::now_ns());
            Ok(cri::PodSandboxStatusResponse { status: Some(status), info, containers_statuses, timestamp })
        })
        .await
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> R<cri::ListPodSandboxResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "list_pod_sandbox", async {
            Ok(cri::ListPodSandboxResponse { items: self.list_pods(r.filter).await.or_status()? })
        })
        .await
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> R<cri::CreateContainerResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "create_container", async {
            let config = r.config.ok_or_else(|| invalid("CreateContainer: config is required"))?;
            let id = self.create_container(&r.pod_sandbox_id, config).await.or_status()?;
            Ok(cri::CreateContainerResponse { container_id: id })
        })
        .await
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> R<cri::StartContainerResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "start_container", async {
            self.start_container(&r.container_id).await.or_status()?;
            Ok(cri::StartContainerResponse {})
        })
        .await
    }

    async fn stop_container(&self, r: Request<cri::StopContainerRequest>) -> R<cri::StopContainerResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "stop_container", async {
            self.stop_container(&r.container_id, r.timeout).await.or_status()?;
            Ok(cri::StopContainerResponse {})
        })
        .await
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> R<cri::RemoveContainerResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "remove_container", async {
            self.remove_container(&r.container_id).await.or_status()?;
            Ok(cri::RemoveContainerResponse {})
        })
        .await
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> R<cri::ListContainersResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "list_containers", async {
            Ok(cri::ListContainersResponse { containers: self.list_containers(r.filter).await.or_status()? })
        })
        .await
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> R<cri::ContainerStatusResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "container_status", async {
            let (status, info) = self.container_status(&r.container_id, r.verbose).await.or_status()?;
            Ok(cri::ContainerStatusResponse { status: Some(status), info })
        })
        .await
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> R<cri::UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "update_container_resources", async {
            self.update_container_resources(&r.container_id, r.linux).await.or_status()?;
            Ok(cri::UpdateContainerResourcesResponse {})
        })
        .await
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> R<cri::ReopenContainerLogResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "reopen_container_log", async {
            self.reopen_container_log(&r.container_id).await.or_status()?;
            Ok(cri::ReopenContainerLogResponse {})
        })
        .await
    }

    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> R<cri::ExecSyncResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "exec_sync", async {
            self.exec_sync(&r.container_id, r.cmd, r.timeout).await.or_status()
        })
        .await
    }

    async fn exec(&self, r: Request<cri::ExecRequest>) -> R<cri::ExecResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "exec", async { Ok(cri::ExecResponse { url: self.exec_url(r).await.or_status()? }) })
            .await
    }

    async fn attach(&self, r: Request<cri::AttachRequest>) -> R<cri::AttachResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "attach", async {
            Ok(cri::AttachResponse { url: self.attach_url(r).await.or_status()? })
        })
        .await
    }

    async fn port_forward(&self, r: Request<cri::PortForwardRequest>) -> R<cri::PortForwardResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "port_forward", async {
            Ok(cri::PortForwardResponse { url: self.port_forward_url(r).await.or_status()? })
        })
        .await
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> R<cri::ContainerStatsResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "container_stats", async {
            let c = self.container(&r.container_id).await.or_status()?;
            Ok(cri::ContainerStatsResponse { stats: Some(self.stats_of(&c).await) })
        })
        .await
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> R<cri::ListContainerStatsResponse> {
        let f = r.into_inner().filter.unwrap_or_default();
        rpc(&self.stats, "list_container_stats", async {
            let all = self.containers().await.or_status()?;
            let mut stats = Vec::new();
            for c in all.iter().filter(|c| {
                c.record.id.starts_with(&f.id)
                    && c.cri.sandbox_id.starts_with(&f.pod_sandbox_id)
                    && f.label_selector.iter().all(|(k, v)| c.cri.config.labels.get(k) == Some(v))
            }) {
                stats.push(self.stats_of(c).await);
            }
            Ok(cri::ListContainerStatsResponse { stats })
        })
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        r: Request<cri::PodSandboxStatsRequest>,
    ) -> R<cri::PodSandboxStatsResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "pod_sandbox_stats", async {
            Ok(cri::PodSandboxStatsResponse {
                stats: Some(self.pod_stats(&r.pod_sandbox_id).await.or_status()?),
            })
        })
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> R<cri::ListPodSandboxStatsResponse> {
        let f = r.into_inner().filter.unwrap_or_default();
        rpc(&self.stats, "list_pod_sandbox_stats", async {
            let mut stats = Vec::new();
            for pod in self.pods().await.or_status()? {
                let wanted = pod.info.id.starts_with(&f.id)
                    && f.label_selector.iter().all(|(k, v)| pod.config.labels.get(k) == Some(v));
                if wanted {
                    stats.push(self.pod_stats(&pod.info.id).await.or_status()?);
                }
            }
            Ok(cri::ListPodSandboxStatsResponse { stats })
        })
        .await
    }

    async fn update_runtime_config(
        &self,
        _r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> R<cri::UpdateRuntimeConfigResponse> {
        // The pod CIDR arrives here; CNI networking (a later issue) will use it.
        rpc(&self.stats, "update_runtime_config", async { Ok(cri::UpdateRuntimeConfigResponse {}) }).await
    }

    async fn status(&self, r: Request<cri::StatusRequest>) -> R<cri::StatusResponse> {
        let verbose = r.into_inner().verbose;
        rpc(&self.stats, "status", async { Ok(Cri::status(self, verbose).await) }).await
    }

    async fn checkpoint_container(
        &self,
        _r: Request<cri::CheckpointContainerRequest>,
    ) -> R<cri::CheckpointContainerResponse> {
        rpc(&self.stats, "checkpoint_container", async { Err(unimplemented("CheckpointContainer")) }).await
    }

    type GetContainerEventsStream =
        futures_util::stream::Empty<std::result::Result<cri::ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _r: Request<cri::GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        Err(unimplemented("GetContainerEvents"))
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> R<cri::ListMetricDescriptorsResponse> {
        rpc(&self.stats, "list_metric_descriptors", async { Err(unimplemented("ListMetricDescriptors")) })
            .await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> R<cri::ListPodSandboxMetricsResponse> {
        rpc(&self.stats, "list_pod_sandbox_metrics", async { Err(unimplemented("ListPodSandboxMetrics")) })
            .await
    }

    async fn runtime_config(&self, _r: Request<cri::RuntimeConfigRequest>) -> R<cri::RuntimeConfigResponse> {
        rpc(&self.stats, "runtime_config", async { Ok(crate::info::runtime_config()) }).await
    }
}

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(&self, r: Request<cri::ListImagesRequest>) -> R<cri::ListImagesResponse> {
        let filter = r.into_inner().filter.and_then(|f| f.image).map(|i| i.image);
        rpc(&self.stats, "list_images", async {
            Ok(cri::ListImagesResponse {
                images: Cri::list_images(self, filter.as_deref()).await.or_status()?,
            })
        })
        .await
    }

    async fn image_status(&self, r: Request<cri::ImageStatusRequest>) -> R<cri::ImageStatusResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "image_status", async {
            let spec = r.image.map(|i| i.image).unwrap_or_default();
            let image = Cri::image_status(self, &spec).await.or_status()?;
            Ok(cri::ImageStatusResponse { image, info: Default::default() })
        })
        .await
    }

    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> R<cri::PullImageResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "pull_image", async {
            let spec = r.image.map(|i| i.image).unwrap_or_default();
            let image_ref = Cri::pull_image(self, &spec, r.auth).await.or_status()?;
            Ok(cri::PullImageResponse { image_ref })
        })
        .await
    }

    async fn remove_image(&self, r: Request<cri::RemoveImageRequest>) -> R<cri::RemoveImageResponse> {
        let r = r.into_inner();
        rpc(&self.stats, "remove_image", async {
            let spec = r.image.map(|i| i.image).unwrap_or_default();
            Cri::remove_image(self, &spec).await.or_status()?;
            Ok(cri::RemoveImageResponse {})
        })
        .await
    }

    async fn image_fs_info(&self, _r: Request<cri::ImageFsInfoRequest>) -> R<cri::ImageFsInfoResponse> {
        rpc(&self.stats, "image_fs_info", async {
            Ok(cri::ImageFsInfoResponse {
                image_filesystems: self.image_fs().await,
                container_filesystems: Vec::new(),
            })
        })
        .await
    }
}
