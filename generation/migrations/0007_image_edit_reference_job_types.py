from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0006_ledger_outlives_projects'),
    ]

    operations = [
        migrations.AlterField(
            model_name='generationjob',
            name='type',
            field=models.CharField(choices=[('character-generation', 'Characters'), ('scene-generation', 'Scenes'), ('frame-generation', 'Frames'), ('video-generation', 'Videos'), ('video-stitching', 'Stitch'), ('portrait-generation', 'Portrait'), ('keyframe-generation', 'Keyframe'), ('refresh', 'Refresh'), ('export', 'Export'), ('audio-generation', 'Audio'), ('image-edit', 'Image Edit'), ('reference-generation', 'Reference')], max_length=32),
        ),
    ]
