{
  "targets": [
    {
      "target_name": "tcptrace",
      "sources": [
        "native/addon.cc",
        "native/bpf_error.cc",
        "native/direct_writer.cc",
        "native/libbpf_log.cc",
        "native/linger.cc",
        "native/map_walk.cc",
        "native/probe.cc",
        "native/ring_map.cc",
        "native/ring_poller.cc",
        "native/sock_diag.cc",
        "native/stack_resolver.cc",
        "native/stacks/debuginfo.cc",
        "native/stacks/elf_info.cc",
        "native/stacks/perf_map.cc",
        "native/stacks/proc_maps.cc",
        "native/stacks/sym_index.cc",
        "native/stacks/symbolizer.cc",
        "native/stacks/unwinder.cc",
        "native/tracefs.cc",
        "native/tracer.cc",
        "native/write_behind.cc"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include\")",
        "bpf",
        "bpf/.output",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fvisibility=hidden"],
      "libraries": ["<!@(pkg-config --libs libbpf)", "<!@(pkg-config --libs libdw)"]
    }
  ]
}
