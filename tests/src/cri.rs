//! A CRI v1 client of a test berthd's `cri.sock` (the same generated bindings the service
//! serves), and small builders of CRI requests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// One runtime for a whole test binary: a tonic channel's connection task lives on the
/// runtime it was made on, so every call must run there too.
static RT: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
});

/// Runs `f` on the CRI clients' runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.block_on(f)
}

/// Both CRI services over one channel.
#[derive(Clone)]
pub struct CriClient {
    /// RuntimeService.
    pub rt: RuntimeServiceClient<Channel>,
    /// ImageService.
    pub img: ImageServiceClient<Channel>,
}

impl CriClient {
    /// Connects to the CRI socket at `socket`.
    pub async fn connect(socket: &Path) -> Result<CriClient, tonic::transport::Error> {
        let path: PathBuf = socket.to_path_buf();
        let channel =
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
                    }
                }))
                .await?;
        Ok(CriClient {
            rt: RuntimeServiceClient::new(channel.clone()),
            img: ImageServiceClient::new(channel),
        })
    }

    /// `berth`'s local image `src` pushed to `reg` as `test/busybox:<tag>` and pulled back
    /// through the CRI: the image's name there, and the client that pulled it.
    pub fn pulled(
        berth: &crate::Berth,
        reg: &crate::dist::Registry,
        src: &str,
        tag: &str,
    ) -> (String, CriClient) {
        let image = format!("{}/test/busybox:{tag}", reg.addr);
        crate::dist::berth_ok(berth, &["images", "tag", src, &image]);
        crate::dist::berth_ok(berth, &["images", "push", &image]);
        let mut c = block_on(CriClient::of(berth));
        block_on(c.img.pull_image(k8s_cri::v1::PullImageRequest {
            image: Some(k8s_cri::v1::ImageSpec { image: image.clone(), ..Default::default() }),
            ..Default::default()
        }))
        .expect("pull through the CRI");
        (image, c)
    }

    /// A client of `berth`'s CRI service, waiting up to 5 s for its socket.
    pub async fn of(berth: &crate::Berth) -> CriClient {
        let socket = berth.state.join("cri.sock");
        for _ in 0..200 {
            if let Ok(c) = CriClient::connect(&socket).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no CRI service on {}", socket.display());
    }
}
