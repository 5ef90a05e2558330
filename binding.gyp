{
  "targets": [
    {
      "target_name": "tcptrace",
      "sources": [
        "native/addon.cc",
        "native/bpf_error.cc",
        "native/libbpf_log.cc",
        "native/probe.cc",
        "native/ring_poller.cc",
        "native/sock_diag.cc",
        "native/tracefs.cc",
        "native/tracer.cc"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include\")",
        "bpf",
        "bpf/.output"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fvisibility=hidden"],
      "libraries": ["<!@(pkg-config --libs libbpf)"]
    }
  ]
}
