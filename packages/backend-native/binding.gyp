{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": [
        "native/addon.cc",
        "native/gemm.cc",
        "native/matmul.cc",
        "native/program.cc",
        "native/reduce.cc",
        "native/softmax.cc",
        "native/pool.cc",
        "native/conv.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions", "-fopenmp"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lopenblas", "-ldnnl", "-ldl", "-fopenmp"]
    }
  ]
}
