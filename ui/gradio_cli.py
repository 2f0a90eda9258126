"""``midas-diffusion ui``: start the Gradio app (registered through the ``midas_diffusion.cli`` entry points)."""

from __future__ import annotations

import json


def add_parsers(sub) -> None:
    p = sub.add_parser("ui", help="start the Gradio app on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="create a public gradio share link (off by default)")
    p.add_argument("--concurrency", type=int, default=1, help="diffusion runs at once; others wait in the queue")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--depth-models", default=None,
                   help='JSON object {"picker name": "zoo name, checkpoint or folder"} (default: the whole zoo)')
    p.add_argument("--bases", default=None, help='JSON object {"method": "hub id, folder or single-file checkpoint"}')
    p.add_argument("--single-file-config", default=None,
                   help="local diffusers folder describing single-file bases (default: the method's default base "
                        "from the Hugging Face cache)")
    p.add_argument("--max-pixels", type=float, default=64e6)
    p.add_argument("--backend", choices=["auto", "torch", "openvino"], default="auto",
                   help="what runs the depth network (auto: OpenVINO on a CPU where installed and measured faster)")
    p.set_defaults(func=run_ui)


def run_ui(args) -> int:
    from .gradio_app import AppConfig, launch

    chosen = {}
    if args.depth_models:
        chosen["depth_models"] = json.loads(args.depth_models)
    if args.bases:
        chosen["bases"] = json.loads(args.bases)
    config = AppConfig(concurrency_limit=args.concurrency, device=args.device, weights_dir=args.weights_dir,
                       max_pixels=int(args.max_pixels), single_file_config=args.single_file_config,
                       backend=args.backend, **chosen)
    launch(config, host=args.host, port=args.port, share=args.share)
    return 0
