"""AlexNet, Krizhevsky, Sutskever and Hinton (2012), on ImageNet with the paper's recipe.

  python -m alexnet_jax.tools.prepare --dataset=imagenet2012 --manual_dir=/data/imagenet
  python -m alexnet_jax.main --config=configs/default.py --workdir=/runs/alexnet \
      --config.data.manual_dir=/data/imagenet

Recipe (section 5 of the paper): SGD, batch 128, momentum 0.9, weight decay 5e-4, learning rate
0.01 divided by 10 three times, about 90 epochs; random 224 crops of 256 images, flips and PCA
lighting; two-group convolutions, LRN, overlapping pooling, dropout 0.5.
Expected: the paper reports 40.7% top-1 / 18.2% top-5 error for one CNN on ILSVRC-2012 val
(10-crop, --config.data.eval_crops=10).
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.total_steps = 0  # 0: num_epochs of the training set
  config.num_epochs = 90.0
  config.log_every_steps = 100
  config.eval_every_steps = 5000  # 0: evaluate only at the end
  config.init_from = ''  # another run's workdir or checkpoint: start from its parameters
  config.label_smoothing = 0.0
  # JAX's persistent compilation cache (CLI and tools): a second run or a resume of the same
  # config loads its compiled programs instead of compiling them. '' turns it off.
  config.compilation_cache_dir = '~/.cache/alexnet_jax/compilation_cache'

  config.data = ml_collections.ConfigDict(dict(
      name='imagenet2012',  # 'imagenet2012' | any TFDS name | 'folder:/path' | 'synthetic'
      data_dir='',  # TFDS data_dir ('' : TFDS's default, ~/tensorflow_datasets)
      manual_dir='',  # holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar
      train_split='train',
      eval_split='validation',
      image_size=224,
      batch_size=128,  # global, over all processes and devices
      crop='paper',  # 'paper': resize shorter side to 256/224 x image_size, random crop | 'inception'
      # Shorter side before the crop / image_size: the paper's 256/224 (train and eval crops);
      # 32/24 takes 24-px crops of CIFAR-10's 32-px photos unscaled; 1.0 keeps the whole image.
      resize_ratio=256 / 224,
      flip=True,
      pca_lighting_std=0.1,  # 0 turns PCA lighting off
      eval_crops=1,  # 1: centre crop | 10: the paper's four corners + centre and their mirrors
      on_corrupt='error',  # 'error' | 'skip' (counted in the log)
      # True: train and evaluate on a copy down-sampled as in the paper (central square, shorter
      # side 256/224 x image_size: 256 for 224), written once under data_dir; a faster input
      # pipeline (README 'Input pipeline speed'). The 'inception' crop then samples within it.
      downsample=False,
      # classes > 0 with name='imagenet2012': a generated ImageNet of that many classes (the first
      # synsets; alexnet_jax/fake_imagenet.py), written and prepared on first use; empty manual_dir/data_dir
      # go under ~/.cache/alexnet_jax/fake_imagenet_<classes>c_<train>t_<val>v_<px>px_v<version>/.
      fake_imagenet=ml_collections.ConfigDict(dict(
          classes=0, train_per_class=300, val_per_class=10, image_px=73)),
  ))

  config.model = ml_collections.ConfigDict(dict(
      # 'paper' | 'torchvision' | 'cifar18pct' | 'cifar_conv_local' (cuda-convnet's CIFAR-10 nets)
      variant='paper',
      num_classes=1000,
      # The ablation knobs; None takes the variant's own value.
      activation=ml_collections.FieldReference(None, field_type=str),  # 'relu' | 'tanh'
      lrn=ml_collections.FieldReference(None, field_type=bool),
      overlap_pool=ml_collections.FieldReference(None, field_type=bool),  # 3/2 vs 2/2 pooling
      dropout_rate=ml_collections.FieldReference(None, field_type=float),
      groups=ml_collections.FieldReference(None, field_type=int),  # 1 | 2
      weight_init=ml_collections.FieldReference(None, field_type=str),  # 'paper' | 'torchvision' | 'he'
      dtype='float32',  # compute dtype: 'float32' | 'bfloat16'; parameters stay float32
      fc_width=4096,  # FC6/FC7 width; the paper's 4096 (smaller only for tiny test models)
      # conv1 fit for small photos (configs/cifar10.py): its kernel and stride; 0 keeps the
      # variant's 11x11 stride 4 (padding (kernel - 1) // 2 when the kernel is set).
      conv1_kernel=0,
      conv1_stride=0,
      pooled_size=6,  # side of the map FC6 sees (adaptive average pooling): the paper's 6x6
  ))

  config.optimizer = ml_collections.ConfigDict(dict(
      name='sgd',  # 'sgd' (momentum, the paper's update rule) | 'adamw'
      learning_rate=0.01,
      momentum=0.9,
      weight_decay=5e-4,
      schedule='step',  # 'step' | 'cosine' | 'constant' | 'plateau'
      decay_every_epochs=25.0,  # 'step': divide by decay_factor at 25, 50 and 75 epochs
      decay_factor=0.1,
      warmup_steps=0,
      # 'plateau' (the paper's rule): divide by decay_factor when the eval plateau_metric has not
      # improved for `patience` evaluations (every eval_every_steps), at most max_decays times.
      plateau_metric='loss',  # 'loss' | 'top1'
      patience=2,
      max_decays=3,  # the paper divided three times
      # K > 1: each step runs K micro-batches of batch_size / K and averages their gradients: the
      # same update with a K-th of the activation memory.
      accumulate_steps=1,
      ema_decay=0.0,  # > 0 (e.g. 0.999): also keep a moving average of the parameters (--ema)
      # Layers that train: 'all' | 'classifier' (fc6-fc8) | 'fc8' | a list like 'conv5,fc6,fc7,fc8';
      # the others are frozen (no update, no weight decay, no optimizer state): fine-tuning.
      trainable='all',
  ))

  config.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))  # -1: the remaining devices
  config.checkpoint = ml_collections.ConfigDict(dict(every_steps=5000, keep=3))
  # num_steps > 0: a jax.profiler trace of the train steps start_step+1..start_step+num_steps in
  # WORKDIR/plugins/profile/ (TensorBoard's profile plugin; Perfetto); process 0 only unless
  # all_processes. Start after the first steps: step 1 includes compilation.
  config.profile = ml_collections.ConfigDict(dict(start_step=10, num_steps=0, all_processes=False))
  return config
