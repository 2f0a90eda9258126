"""Front ends for midas-diffusion: ``params`` (the shared controls), ``comfyui`` (node pack),
``a1111`` (AUTOMATIC1111 extension), ``cli`` (install commands).

Importing this package imports nothing else: no gradio, no ComfyUI, no AUTOMATIC1111 module.
"""
