//! tessera-device-plugin: kubelet registration, the DevicePlugin gRPC service and the NVML
//! adapter, around the decisions in tessera-core. Built by the device plugin issue; today it only
//! fixes the crate's place in the workspace (STYLE.md, section 1).
