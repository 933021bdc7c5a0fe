{
  "targets": [
    {
      "target_name": "tsgi",
      "sources": [
        "native/binding/addon.cc",
        "native/binding/decoders.cc",
        "native/binding/encoders.cc",
        "native/binding/fastcgi_server.cc",
        "native/binding/listen.cc",
        "native/binding/process.cc",
        "native/binding/uwsgi_server.cc",
        "native/fastcgi/codec.cc",
        "native/uwsgi/codec.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra"
      ],
      "cflags_cc!": [
        "-std=gnu++17",
        "-std=gnu++14"
      ]
    }
  ]
}
